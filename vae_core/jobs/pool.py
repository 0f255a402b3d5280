"""JobPool: a process-wide limit on concurrent training jobs, an optional wall-clock cap per job, and stopping the
jobs of owners that went away."""
from __future__ import annotations

import os
import threading
import time
from typing import Callable

from .core import JobCore


def default_max_jobs() -> int:
    """Concurrent training jobs allowed (env VAE_MAX_JOBS; default 2, one per core on the 2-core machine)."""
    return int(os.environ.get("VAE_MAX_JOBS", 2))


def default_max_job_seconds() -> float | None:
    """Wall-clock cap per job (env VAE_MAX_JOB_SECONDS; unset or 0: none)."""
    value = float(os.environ.get("VAE_MAX_JOB_SECONDS") or 0)
    return value if value > 0 else None


class PoolFull(RuntimeError):
    """Raised when starting one more job would exceed the limit."""


class JobPool:
    """Starts jobs for owners (e.g. browser sessions) under a global limit; thread-safe."""

    def __init__(self, max_jobs: int | None = None, max_job_s: float | None = None):
        self.max_jobs = max_jobs if max_jobs is not None else default_max_jobs()
        self.max_job_s = max_job_s if max_job_s is not None else default_max_job_seconds()
        self._lock = threading.Lock()
        self._jobs: dict[str, JobCore] = {}  # owner -> their latest job
        self._started: dict[str, float] = {}  # owner -> when their latest job started (monotonic)
        self._stopped_why: dict[str, tuple[JobCore, str]] = {}  # owner -> (job, why the pool stopped it)
        self._gone_since: dict[str, float] = {}
        self._watchdog: threading.Thread | None = None

    def running(self) -> dict[str, JobCore]:
        """Owners whose job is running, paused or stopping."""
        with self._lock:
            return {owner: job for owner, job in self._jobs.items() if job.is_active}

    def start(self, owner: str, job: JobCore) -> JobCore:
        """Start job for owner (stopping the owner's previous one), or raise PoolFull with a clear message."""
        with self._lock:
            previous = self._jobs.get(owner)
            if previous is not None and previous.is_active:
                previous.stop()
            busy = sum(1 for o, j in self._jobs.items() if o != owner and j.is_active)
            if busy >= self.max_jobs:
                raise PoolFull(f"{busy} training jobs are already running on this server (limit {self.max_jobs}); "
                               "try again when one finishes")
            self._jobs[owner], self._started[owner] = job, time.monotonic()
        if previous is not None:
            previous.join(timeout=10)
        return job.start()

    def job(self, owner: str) -> JobCore | None:
        with self._lock:
            return self._jobs.get(owner)

    def stop_owner(self, owner: str) -> None:
        with self._lock:
            job = self._jobs.get(owner)
        if job is not None:
            job.stop()

    def stop_overdue(self) -> list[str]:
        """Stop the jobs that have run longer than max_job_s (they save as on Stop); return their owners."""
        if self.max_job_s is None:
            return []
        now, stopped = time.monotonic(), []
        with self._lock:
            overdue = [(o, j) for o, j in self._jobs.items()
                       if j.is_active and j.state != "stopping" and now - self._started[o] >= self.max_job_s]
            for owner, job in overdue:
                self._stopped_why[owner] = (job, f"Stopped after {self.max_job_s / 60:g} min: training jobs on this "
                                                 "server are limited in time (VAE_MAX_JOB_SECONDS); the run is saved.")
        for owner, job in overdue:
            job.stop()
            stopped.append(owner)
        return stopped

    def why_stopped(self, owner: str, job: JobCore) -> str | None:
        """Why the pool stopped this owner's job (the time limit), or None if it did not."""
        with self._lock:
            entry = self._stopped_why.get(owner)
        return entry[1] if entry is not None and entry[0] is job else None

    def reap(self, is_alive: Callable[[str], bool], grace_s: float) -> list[str]:
        """Stop the jobs of owners not alive for longer than grace_s (their runs stay on disk); return those owners."""
        now, stopped = time.monotonic(), []
        with self._lock:
            owners = list(self._jobs)
        for owner in owners:
            if is_alive(owner):
                self._gone_since.pop(owner, None)
                continue
            since = self._gone_since.setdefault(owner, now)
            if now - since >= grace_s:
                with self._lock:
                    job = self._jobs.pop(owner, None)
                self._gone_since.pop(owner, None)
                if job is not None:
                    job.stop()
                    stopped.append(owner)
        return stopped

    def start_watchdog(self, is_alive: Callable[[str], bool], grace_s: float, interval_s: float = 5.0) -> None:
        """Call reap and stop_overdue every interval_s in a daemon thread (once per pool)."""
        with self._lock:
            if self._watchdog is not None:
                return
            self._watchdog = threading.Thread(target=self._watch, args=(is_alive, grace_s, interval_s),
                                              name="vae-job-watchdog", daemon=True)
        self._watchdog.start()

    def _watch(self, is_alive: Callable[[str], bool], grace_s: float, interval_s: float) -> None:
        while True:
            time.sleep(interval_s)
            try:
                self.reap(is_alive, grace_s)
                self.stop_overdue()
            except Exception:  # a watchdog must outlive one bad check
                pass
