"""Where every training process comes from: the fork server (WORKERS: torch is imported once, there, and each
worker forks from it), and one spare worker started ahead of the next job, so that a job starts in milliseconds, not
the ~0.15 s of a fork and a fresh process's first torch calls."""
from __future__ import annotations

import importlib.machinery
import multiprocessing
import sys
import threading
from typing import Callable

from .protocol import JobShape
from .worker import spare_main

# public: the bench starts its timed runs from it too
WORKERS = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                      else "spawn")
if WORKERS.get_start_method() == "forkserver":
    # workers fork with torch imported (not the main script: start_worker keeps workers from running it)
    # torch._dynamo too: torch.optim imports it lazily at the first optimizer (seconds, in every worker otherwise)
    WORKERS.set_forkserver_preload(["vae_core.jobs", "torch._dynamo"])


def start_worker(target: Callable, args: tuple, name: str) -> multiprocessing.Process:
    """Start a daemon worker process running target(*args) (a function of an importable module), without running the
    parent's main script in it.

    multiprocessing runs the parent's __main__ again in every child whose __main__ is a file rather than a module,
    and CPython's forkserver never preloads it (it asks the preparation data for "main_path", which names it
    "init_main_from_path"). Under `streamlit run`, __main__ is app.py's module: each worker ran the whole app frame
    (page config, navigation), logging ~30 "missing ScriptRunContext" warnings per job start. A module named
    "__main__" is one multiprocessing skips; the spec says so for the moment of the start."""
    main = sys.modules.get("__main__")
    hide = main is not None and getattr(main, "__spec__", None) is None
    if hide:
        main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)
    try:
        process = WORKERS.Process(target=target, args=args, name=name, daemon=True)
        process.start()
    finally:
        if hide:
            main.__spec__ = None
    return process


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
                process = start_worker(spare_main, (child, shape), "vae-training-spare")
                child.close()
            except Exception:
                return
            self._conn, self._process = conn, process


SPARE = Spare()
