"""How fast a client may guess the server's password: after each wrong password the client (its session, and its
address) waits DELAY_S before its next guess is checked; MAX_FAILURES wrong ones in a row lock it out for LOCKOUT_S.
A guess made while waiting is not checked, so it neither counts nor tells anything. The server holds one of these
(ui/server.py: password_guesses); ui/access.py asks it before comparing the password."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

DELAY_S = 1.0  # one checked guess a second per client, where a script could make 14
MAX_FAILURES = 10
LOCKOUT_S = 15 * 60.0


@dataclass(frozen=True)
class Verdict:
    """One guess's outcome: granted, or refused (checked and wrong, or not checked while the client waits)."""
    granted: bool
    checked: bool
    wait_s: float = 0.0  # how long until this client's next guess is checked
    locked: bool = False  # the client is locked out (wait_s says for how long)


@dataclass
class _Record:
    failures: int = 0
    next_try_at: float = 0.0
    locked_until: float = 0.0


class PasswordGuesses:
    """Failed guesses per client key (e.g. "session <id>", "address <ip>"); a guess waits for the slowest of its
    keys. Thread-safe: a guess is checked and recorded under one lock, so parallel sessions of one address take
    turns."""

    def __init__(self, delay_s: float = DELAY_S, max_failures: int = MAX_FAILURES, lockout_s: float = LOCKOUT_S,
                 clock: Callable[[], float] = time.monotonic):
        self.delay_s, self.max_failures, self.lockout_s, self.clock = delay_s, max_failures, lockout_s, clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def attempt(self, clients: Sequence[str], check: Callable[[], bool]) -> Verdict:
        """Check a guess with `check()` unless one of the clients must wait; record the outcome for all of them."""
        with self._lock:
            now = self.clock()
            self._forget_old(now)
            records = [self._records.setdefault(c, _Record()) for c in clients]
            locked_until = max(r.locked_until for r in records)
            if locked_until > now:
                return Verdict(granted=False, checked=False, wait_s=locked_until - now, locked=True)
            next_try_at = max(r.next_try_at for r in records)
            if next_try_at > now:
                return Verdict(granted=False, checked=False, wait_s=next_try_at - now)
            if check():
                for c in clients:
                    self._records.pop(c, None)
                return Verdict(granted=True, checked=True)
            for r in records:
                r.failures, r.next_try_at = r.failures + 1, now + self.delay_s
                if r.failures >= self.max_failures:
                    r.failures, r.locked_until = 0, now + self.lockout_s
            locked_until = max(r.locked_until for r in records)
            if locked_until > now:
                return Verdict(granted=False, checked=True, wait_s=locked_until - now, locked=True)
            return Verdict(granted=False, checked=True, wait_s=self.delay_s)

    def _forget_old(self, now: float) -> None:
        """Drop records with nothing left to enforce, so sessions that came and went do not pile up."""
        stale = [c for c, r in self._records.items()
                 if r.locked_until <= now and r.next_try_at + self.lockout_s <= now]
        for c in stale:
            del self._records[c]
