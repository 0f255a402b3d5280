"""What one server process holds for all its browser sessions: the runs and uploads folders, the loaded datasets and
runs, the pool of training jobs (its limit and watchdog), the queue of slow projection fits, the registry of who
created which run and which run each session has active, and the password's state (who entered it, who guessed
wrong and must wait).

Each is made once per process, on first use, under a lock (`server_wide`), and never in `st.cache_resource`: any
client, before the app's password check, may send Streamlit's `clear_cache` message, which empties every
`st.cache_resource` and `st.cache_data` of the server. What lives there must be a cache whose loss costs only a
recomputation (latents, fitted projections, the browser's assets); the limits and sharing rules live here
(tests/e2e/test_clear_cache.py sends that message and checks they hold)."""
from __future__ import annotations

import functools
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Generic, TypeVar

import numpy as np
import streamlit as st

from ui.byte_cache import ByteBudgetCache
from ui.fit_queue import FitQueue
from ui.guesses import PasswordGuesses
from vae_core.data import Dataset
from vae_core.encoding import EncodingPool
from vae_core.runs import Run, RunSummary, default_runs_root, list_runs, load_run
from vae_core.runs.kept_data import load_dataset

if TYPE_CHECKING:  # imported where the pool is made: Explore's first page does not load the training engine
    from vae_core.jobs import JobPool

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_RUN = ROOT / "assets" / "runs" / "digits-default"  # made by `make-bundled-run` in README, shipped in git

T = TypeVar("T")


class server_wide(Generic[T]):  # noqa: N801 - used as a decorator, like functools.cache
    """Decorate a factory of no arguments: the first call makes the value, every later call returns the same one,
    in every thread and session of this process."""

    def __init__(self, make: Callable[[], T]):
        functools.update_wrapper(self, make)
        self.make = make
        self._lock = threading.Lock()
        self._value: T | None = None

    def __call__(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self.make()
            return self._value

    def reset(self) -> None:
        """Forget the value (tests only: the next call makes a new one, e.g. under other environment limits)."""
        with self._lock:
            self._value = None


# --------------------------------------------------------------------------- folders on disk

def runs_root() -> Path:
    """The runs folder (env VAE_RUNS_DIR, default ./runs), created on demand."""
    root = default_runs_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


BUNDLED_SUFFIX = " (bundled)"


def all_runs() -> dict[str, RunSummary]:
    """Label -> run: the runs folder's runs, newest first, then the bundled run."""
    runs = {r.name: r for r in list_runs(runs_root())}
    runs |= {r.name + BUNDLED_SUFFIX: r for r in list_runs(BUNDLED_RUN.parent) if r.path == BUNDLED_RUN}
    return runs


def same(a: str | Path | None, b: str | Path | None) -> bool:
    """Whether two run paths name the same folder."""
    return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()


def uploads_root() -> Path:
    """Where uploaded data files are written so loaders can read them (inside the runs folder, hidden). A dataset
    loaded from an upload is read again from here whenever it has left the dataset cache."""
    path = runs_root() / ".uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------- sessions

def session_id() -> str:
    """The Streamlit session this script run belongs to ("local" outside a script run)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "local"


def session_is_alive(sid: str) -> bool:
    """Whether a browser session is still connected (True where there is no runtime, e.g. in AppTest)."""
    from streamlit import runtime

    if not runtime.exists():
        return True
    # not Runtime.is_active_session: ui/access.py makes that answer False for a session without the password
    return runtime.get_instance().get_client(sid) is not None


# --------------------------------------------------------------------------- loaded datasets and runs

def dataset_bytes(dataset: Dataset) -> int:
    """The memory a dataset holds (a memory-mapped file's pages belong to the page cache, not to us)."""
    arrays = (dataset.images, dataset.labels, dataset.factors)
    return sum(a.nbytes for a in arrays if a is not None and not isinstance(a, np.memmap))


def run_bytes(run: Run) -> int:
    """A loaded run's memory: its tensors, and its history and metrics (parsed JSON takes several times its text)."""
    tensors = [*run.model.state_dict().values(), *(run.optimizer_tensors or {}).values()]
    json_text = sum((run.path / name).stat().st_size for name in ("history.json", "metrics.json")
                    if (run.path / name).is_file())
    return sum(t.numel() * t.element_size() for t in tensors) + 4 * json_text


@server_wide
def dataset_cache() -> ByteBudgetCache[Dataset]:
    """The server's loaded datasets: at most 8, and VAE_DATASET_CACHE_BYTES (default 4 GiB) together."""
    return ByteBudgetCache(int(float(os.environ.get("VAE_DATASET_CACHE_BYTES") or 4 * 2**30)), dataset_bytes, 8)


@server_wide
def run_cache() -> ByteBudgetCache[Run]:
    """The server's loaded runs: at most 16, and VAE_RUN_CACHE_BYTES (default 1 GiB) together."""
    return ByteBudgetCache(int(float(os.environ.get("VAE_RUN_CACHE_BYTES") or 2**30)), run_bytes, 16)


def _cached(cache: ByteBudgetCache, key, load: Callable, loading: str):
    """cache.get(key, load), with a spinner saying `loading` only when it has to load."""
    if key in cache:
        return cache.get(key, load)
    with st.spinner(loading):
        return cache.get(key, load)


def dataset_for(source: str | dict) -> Dataset:
    """A dataset, loaded once per source for all sessions (read-only: never modify its arrays); a source that names
    a run's kept copy of its data loads that copy from the runs folder (vae_core/runs/kept_data.py)."""
    key = json.dumps(source, sort_keys=True)
    return _cached(dataset_cache(), key, lambda: load_dataset(json.loads(key), runs_root()), "Loading dataset…")


def run_for(path: str | Path) -> Run:
    """A run, loaded once per (path, modification time); reloaded when the run is saved again."""
    path = Path(path)
    key = (str(path), (path / "model.safetensors").stat().st_mtime)
    return _cached(run_cache(), key, lambda: load_run(path), "Loading model…")


# --------------------------------------------------------------------------- jobs and fits

@server_wide
def job_pool() -> JobPool:
    """The one pool of training jobs of this server (VAE_MAX_JOBS at once), with its watchdog for sessions that
    went away."""
    from vae_core.jobs import JobPool  # ~0.3 s of imports (multiprocessing, the job protocol) a first page skips

    pool = JobPool()
    pool.start_watchdog(session_is_alive, grace_s=float(os.environ.get("VAE_DISCONNECT_GRACE_S", 120)))
    return pool


@server_wide
def encodings() -> EncodingPool:
    """The server's latent codes per model file and dataset (vae_core/encoding.py): a first block at once, the rest
    by one worker thread, off every script thread; kept on disk with the run."""
    return EncodingPool()


@server_wide
def fit_queue() -> FitQueue:
    """The one queue of slow projection fits (t-SNE, UMAP) of this server."""
    return FitQueue(session_is_alive)


# --------------------------------------------------------------------------- who created and uses which run

@dataclass
class Registry:
    """Who created which run, which run each session has active, who uploaded which upload folder (keys are
    resolved paths); the rules that read it are in ui/sharing.py. Thread-safe through `lock`."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    creators: dict[str, str] = field(default_factory=dict)  # run path -> session id
    active: dict[str, str] = field(default_factory=dict)  # session id -> its active run's path
    uploaders: dict[str, set[str]] = field(default_factory=dict)  # upload folder -> session ids


@server_wide
def registry() -> Registry:
    """The one registry of this server (a restart forgets it: see ui/sharing.py)."""
    return Registry()


# --------------------------------------------------------------------------- the password (ui/access.py)

@dataclass
class Admissions:
    """The sessions that entered the server's password: the gate of pages asks st.session_state, Streamlit's own
    endpoints (uploads) ask this. Thread-safe through `lock`."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    sessions: set[str] = field(default_factory=set)

    def admit(self, sid: str) -> None:
        with self.lock:
            self.sessions = {s for s in self.sessions if session_is_alive(s)} | {sid}

    def admitted(self, sid: str) -> bool:
        with self.lock:
            return sid in self.sessions


@server_wide
def admissions() -> Admissions:
    """The one record of this server's admitted sessions."""
    return Admissions()


@server_wide
def password_guesses() -> PasswordGuesses:
    """The one record of this server's wrong password guesses, per session and per address."""
    return PasswordGuesses()
