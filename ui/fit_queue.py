"""Slow projection fits (t-SNE) queued server-wide: one fit at a time in one worker thread, at most
VAE_MAX_QUEUED_FITS (default 4) waiting, at most one waiting per session (asking for another replaces it), and a
waiting fit dropped when every session that asked for it has gone. A fit that has started runs to its end
(scikit-learn's t-SNE cannot be interrupted) and is kept for whoever asks again."""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable


class QueueFull(ValueError):
    """Raised when the server's queue of fits is full."""


@dataclass
class Ticket:
    key: str
    fit: Callable[[], Any]
    owners: set[str] = field(default_factory=set)
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    outcome: str = "waiting"  # waiting, running, done, failed, cancelled

    def value(self) -> Any:
        """The fitted result; the fit's exception; or ValueError when the fit was cancelled."""
        if self.error is not None:
            raise self.error
        if self.outcome == "cancelled":
            raise ValueError("this projection was cancelled: its session asked for another one or went away")
        return self.result


class FitQueue:
    """Thread-safe; results of the last `keep` fits are kept by key."""

    def __init__(self, is_alive: Callable[[str], bool], max_waiting: int | None = None, keep: int = 16):
        self.max_waiting = max_waiting if max_waiting is not None else int(os.environ.get("VAE_MAX_QUEUED_FITS", 4))
        self.is_alive, self.keep = is_alive, keep
        self._cond = threading.Condition()
        self._waiting: list[Ticket] = []
        self._running: Ticket | None = None
        self._results: OrderedDict[str, Any] = OrderedDict()
        self.fits = 0  # fits run so far (what tests count)
        threading.Thread(target=self._work, name="vae-fit-queue", daemon=True).start()

    def cached(self, key: str) -> Any | None:
        with self._cond:
            if key in self._results:
                self._results.move_to_end(key)
                return self._results[key]
        return None

    def submit(self, key: str, owner: str, fit: Callable[[], Any]) -> Ticket:
        """Queue fit for key (or join the same fit already queued or running); the owner's other waiting fit is
        cancelled. QueueFull when max_waiting fits are already waiting."""
        with self._cond:
            if key in self._results:
                ticket = Ticket(key, fit, {owner}, result=self._results[key], outcome="done")
                ticket.done.set()
                return ticket
            for ticket in self._waiting:
                if owner in ticket.owners and ticket.key != key:
                    ticket.owners.discard(owner)
            for ticket in [t for t in self._waiting if not t.owners]:
                self._cancel(ticket)
            for ticket in [self._running, *self._waiting]:
                if ticket is not None and ticket.key == key:
                    ticket.owners.add(owner)
                    return ticket
            if len(self._waiting) >= self.max_waiting:
                raise QueueFull(f"{len(self._waiting)} t-SNE fits are already waiting on this server (limit "
                                f"{self.max_waiting}, VAE_MAX_QUEUED_FITS): try again in a minute, or use PCA")
            ticket = Ticket(key, fit, {owner})
            self._waiting.append(ticket)
            self._cond.notify_all()
            return ticket

    def ahead_of(self, ticket: Ticket) -> int:
        """How many fits run or wait before this one (0: it is running or done)."""
        with self._cond:
            if ticket not in self._waiting:
                return 0
            return self._waiting.index(ticket) + (self._running is not None)

    def _cancel(self, ticket: Ticket) -> None:
        self._waiting.remove(ticket)
        ticket.outcome = "cancelled"
        ticket.done.set()

    def _next(self) -> Ticket:
        with self._cond:
            while True:
                for ticket in list(self._waiting):
                    if not any(self.is_alive(owner) for owner in ticket.owners):
                        self._cancel(ticket)  # everyone who asked has gone
                if self._waiting:
                    self._running = self._waiting.pop(0)
                    self._running.outcome = "running"
                    return self._running
                self._cond.wait(timeout=5.0)

    def _work(self) -> None:
        while True:
            ticket = self._next()
            try:
                ticket.result = ticket.fit()
                ticket.outcome = "done"
            except BaseException as exc:  # the worker must outlive one failed fit; its session shows the error
                ticket.error, ticket.outcome = exc, "failed"
            with self._cond:
                self.fits += 1
                if ticket.outcome == "done":
                    self._results[ticket.key] = ticket.result
                    while len(self._results) > self.keep:
                        self._results.popitem(last=False)
                self._running = None
            ticket.done.set()
