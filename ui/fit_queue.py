"""Slow projection fits (t-SNE, UMAP) queued server-wide: one fit at a time in one worker thread, at most
VAE_MAX_QUEUED_FITS (default 4) waiting, at most one waiting per session (asking for another replaces it), and a
waiting fit dropped when every session that asked for it has gone (or asked for another). A running fit that reports
its progress (t-SNE) is stopped the same way, at its next report; one that does not (UMAP) runs to its end and is kept
for whoever asks again.

The queue also times every fit: seconds per unit of the method's work (vae_core.projections: Method.work), the
median of the last RATE_FITS of each method, is how long the next one is said to take on this server."""
from __future__ import annotations

import os
import statistics
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable


RATE_FITS = 5  # an estimate is the median rate of this many of the method's last fits here


class QueueFull(ValueError):
    """Raised when the server's queue of fits is full."""


@dataclass
class Ticket:
    key: str
    fit: Callable[[Callable[[float], bool]], Any]  # fit(report): report(fraction done) -> True when it should stop
    owners: set[str] = field(default_factory=set)
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None
    outcome: str = "waiting"  # waiting, running, done, failed, cancelled
    method: str = ""  # whose rate its time measures
    work: float = 0.0  # the method's work units (0: not timed)
    progress: float | None = None  # fraction done, as the fit last reported (None: it does not report)
    started: float | None = None  # time.monotonic() when it started running

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
        self._rates: dict[str, deque[float]] = {}  # method -> seconds per work unit of its last fits
        self.fits = 0  # fits run so far (what tests count)
        threading.Thread(target=self._work, name="vae-fit-queue", daemon=True).start()

    def cached(self, key: str) -> Any | None:
        with self._cond:
            if key in self._results:
                self._results.move_to_end(key)
                return self._results[key]
        return None

    def estimate(self, method: str, work: float) -> float | None:
        """Seconds a fit of this much work should take here: the median rate of the method's last fits on this
        server (None before the first)."""
        with self._cond:
            rates = self._rates.get(method)
            return statistics.median(rates) * work if rates else None

    def record(self, method: str, work: float, seconds: float) -> None:
        """A fit of method took seconds for work units (the queue's own fits are recorded as they end)."""
        if work > 0 and seconds > 0:
            with self._cond:
                self._rates.setdefault(method, deque(maxlen=RATE_FITS)).append(seconds / work)

    def submit(self, key: str, owner: str, fit: Callable[[Callable[[float], bool]], Any], method: str = "",
               work: float = 0.0) -> Ticket:
        """Queue fit for key (or join the same fit already queued or running); the owner's other fit, waiting or
        running, loses this owner (and is cancelled or stopped when nobody else waits for it). fit(report) is
        called with report(fraction) -> whether to stop. QueueFull when max_waiting fits are already waiting."""
        with self._cond:
            if key in self._results:
                ticket = Ticket(key, fit, {owner}, result=self._results[key], outcome="done")
                ticket.done.set()
                return ticket
            for ticket in [*self._waiting, self._running]:
                if ticket is not None and owner in ticket.owners and ticket.key != key:
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
            ticket = Ticket(key, fit, {owner}, method=method, work=work)
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
                    self._running.outcome, self._running.started = "running", time.monotonic()
                    return self._running
                self._cond.wait(timeout=5.0)

    def _wanted(self, ticket: Ticket) -> bool:
        """Whether anyone still waits for a fit: one of its owners is connected."""
        with self._cond:
            owners = list(ticket.owners)
        return any(self.is_alive(owner) for owner in owners)

    def _report(self, ticket: Ticket, fraction: float) -> bool:
        """A running fit's progress; True (stop) when nobody waits for it any more."""
        ticket.progress = float(fraction)
        return not self._wanted(ticket)

    def _work(self) -> None:
        while True:
            ticket = self._next()
            try:
                ticket.result = ticket.fit(lambda fraction, t=ticket: self._report(t, fraction))
                ticket.outcome = "done"
            except BaseException as exc:  # the worker must outlive one failed fit; its session shows the error
                stopped = not self._wanted(ticket)
                ticket.error, ticket.outcome = (None, "cancelled") if stopped else (exc, "failed")
            seconds = time.monotonic() - ticket.started
            with self._cond:
                self.fits += 1
                if ticket.outcome == "done":
                    self._results[ticket.key] = ticket.result
                    while len(self._results) > self.keep:
                        self._results.popitem(last=False)
                self._running = None
            if ticket.outcome == "done":
                self.record(ticket.method, ticket.work, seconds)
            ticket.done.set()
