"""Where every training process comes from: the fork server (WORKERS: torch is imported once, there, and each
worker forks from it), and one spare worker started ahead of the next job, so that a job starts in milliseconds, not
the ~0.15 s of a fork and a fresh process's first torch calls."""
from __future__ import annotations

import multiprocessing
import threading

from .protocol import JobShape
from .worker import spare_main

# public: the bench starts its timed runs from it too
WORKERS = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                      else "spawn")
if WORKERS.get_start_method() == "forkserver":
    # workers fork with torch imported, and with the server's main script imported once (a worker would else
    # import it again, as multiprocessing does for spawned children: `streamlit run` imports all of Streamlit)
    # torch._dynamo too: torch.optim imports it lazily at the first optimizer (seconds, in every worker otherwise)
    WORKERS.set_forkserver_preload(["__main__", "vae_core.jobs", "torch._dynamo"])


_WARMED = threading.Event()


def warm_up() -> None:
    """Start the fork server (it imports torch once) and a spare worker, so that the first job starts in
    milliseconds; returns at once and does the work in a daemon thread (the first call only)."""
    if not _WARMED.is_set():
        _WARMED.set()
        threading.Thread(target=SPARE.refill, name="vae-worker-warm-up", daemon=True).start()


class Spare:
    """At most one worker process started ahead of its job, waiting on its pipe for the spec (worker.spare_main):
    a job takes it instead of starting a process, and a new one is started when a job ends (not while it trains: the
    fork and the first torch calls would compete with the job for the cores). A spare that died is not used."""

    def __init__(self):
        self._lock = threading.Lock()
        self._conn = self._process = None

    def take(self):
        """(conn, process) of a live spare worker, or None; the caller sends it the spec."""
        with self._lock:
            conn, process, self._conn, self._process = self._conn, self._process, None, None
        if process is not None and process.is_alive():
            return conn, process
        if conn is not None:
            conn.close()
        return None

    def refill(self, shape: JobShape | None = None) -> None:
        """Start a spare worker unless one waits already; never raises (no spare: the next job starts its own).
        shape: the model, batch size and threads of the job that just ended, for the spare to rehearse with."""
        with self._lock:
            if self._process is not None and self._process.is_alive():
                return
            try:
                conn, child = WORKERS.Pipe()
                process = WORKERS.Process(target=spare_main, args=(child, shape), name="vae-training-spare",
                                           daemon=True)
                process.start()
                child.close()
            except Exception:
                return
            self._conn, self._process = conn, process


SPARE = Spare()
