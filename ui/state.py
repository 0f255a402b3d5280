"""Per-session state (active dataset, active model, training job) and the caches shared by every page."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import streamlit as st

from ui.byte_cache import ByteBudgetCache
from ui.fit_queue import FitQueue
from vae_core.data import Dataset, load_source
from vae_core.jobs import JobPool, ProcessJob
from vae_core.runs import Run, default_runs_root, list_runs, load_run

ROOT = Path(__file__).resolve().parent.parent
BUNDLED_RUN = ROOT / "assets" / "runs" / "digits-default"  # made by `make-bundled-run` in README, shipped in git


def runs_root() -> Path:
    """The runs folder (env VAE_RUNS_DIR, default ./runs), created on demand."""
    root = default_runs_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


def uploads_root() -> Path:
    """Where uploaded data files are written so loaders can read them (inside the runs folder, hidden)."""
    path = runs_root() / ".uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


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


@st.cache_resource
def _datasets() -> ByteBudgetCache[Dataset]:
    """The server's loaded datasets: at most 8, and VAE_DATASET_CACHE_BYTES (default 4 GiB) together."""
    return ByteBudgetCache(int(float(os.environ.get("VAE_DATASET_CACHE_BYTES") or 4 * 2**30)), dataset_bytes, 8)


@st.cache_resource
def _runs() -> ByteBudgetCache[Run]:
    """The server's loaded runs: at most 16, and VAE_RUN_CACHE_BYTES (default 1 GiB) together."""
    return ByteBudgetCache(int(float(os.environ.get("VAE_RUN_CACHE_BYTES") or 2**30)), run_bytes, 16)


def _cached(cache: ByteBudgetCache, key, load: Callable, loading: str):
    """cache.get(key, load), with a spinner saying `loading` only when it has to load."""
    if key in cache:
        return cache.get(key, load)
    with st.spinner(loading):
        return cache.get(key, load)


def dataset_for(source: str | dict) -> Dataset:
    """A dataset, loaded once per source for all sessions (read-only: never modify its arrays)."""
    key = json.dumps(source, sort_keys=True)
    return _cached(_datasets(), key, lambda: load_source(json.loads(key)), "Loading dataset…")


def run_for(path: str | Path) -> Run:
    """A run, loaded once per (path, modification time); reloaded when the run is saved again."""
    path = Path(path)
    key = (str(path), (path / "model.safetensors").stat().st_mtime)
    return _cached(_runs(), key, lambda: load_run(path), "Loading model…")


@st.cache_resource
def job_pool() -> JobPool:
    """The one pool of training jobs of this server, with its watchdog for sessions that went away."""
    pool = JobPool()
    pool.start_watchdog(session_is_alive, grace_s=float(os.environ.get("VAE_DISCONNECT_GRACE_S", 120)))
    return pool


@st.cache_resource
def fit_queue() -> FitQueue:
    """The one queue of slow projection fits (t-SNE) of this server."""
    return FitQueue(session_is_alive)


def session_id() -> str:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "local"


def session_is_alive(sid: str) -> bool:
    """Whether a browser session is still connected (True where there is no runtime, e.g. in AppTest)."""
    from streamlit import runtime

    if not runtime.exists():
        return True
    return runtime.get_instance().is_active_session(sid)


def init_state() -> None:
    """Defaults for a new session: bundled digits, and the newest run not created by another connected session (or
    the bundled one) as the active model."""
    from ui.sharing import created_elsewhere, note_active  # (ui.sharing imports this module)

    if "dataset_source" not in st.session_state:
        st.session_state.dataset_source = "digits"
    if "active_run" not in st.session_state:
        runs = [r for r in list_runs(runs_root()) if not created_elsewhere(r.path)]
        default = runs[0].path if runs else BUNDLED_RUN
        st.session_state.active_run = str(default) if (Path(default) / "model.safetensors").exists() else None
    adopt_finished_job()
    note_active(st.session_state.active_run)  # other sessions may not delete it while it is in use here


def active_dataset() -> Dataset:
    return dataset_for(st.session_state.dataset_source)


def set_active_dataset(source: str | dict) -> Dataset:
    """Load and activate a dataset; on a ValueError the previous dataset stays active and the error propagates."""
    dataset = dataset_for(source)
    st.session_state.dataset_source = source
    return dataset


def active_run() -> Run | None:
    """The active model's run, or None (a run deleted from disk deactivates itself)."""
    path = st.session_state.get("active_run")
    if not path:
        return None
    try:
        return run_for(path)
    except (ValueError, OSError):
        st.session_state.active_run = None
        return None


def set_active_run(path: str | Path) -> Run:
    run = run_for(path)
    st.session_state.active_run = str(path)
    return run


def current_job() -> ProcessJob | None:
    """This session's latest training job (running, paused or ended), or None."""
    return st.session_state.get("job")


def adopt_finished_job() -> None:
    """Once this session's job has finished or been stopped, its saved run becomes the active model (once per job)."""
    job = current_job()
    if job is None or job.state not in ("finished", "stopped") or st.session_state.get("adopted_job") == id(job):
        return
    st.session_state.adopted_job = id(job)
    if job.run_dir is not None and (job.run_dir / "model.safetensors").exists():
        set_active_run(job.run_dir)


def run_dataset(run: Run) -> Dataset:
    """The dataset a run was trained on (falls back to the active dataset when its file is gone, or when it is
    another session's upload: uploads are private to the sessions that made them)."""
    from ui.sharing import upload_visible

    if not upload_visible(run.config.data_source):
        return active_dataset()
    try:
        return dataset_for(run.config.data_source)
    except ValueError:
        return active_dataset()


def upload_result(key: str, files: list, handle: Callable[[], str]) -> tuple[str, str] | None:
    """Run handle() once per distinct set of uploaded files (not on every rerun): ("success", its message) or
    ("error", the ValueError's message), remembered so the page keeps showing it while the files stay uploaded."""
    if not files:
        return None
    signature = tuple(f.file_id for f in files)
    done = st.session_state.get(key)
    if done is None or done[0] != signature:
        try:
            result = ("success", handle())
        except ValueError as exc:
            result = ("error", str(exc))
        done = st.session_state[key] = (signature, result)
    return done[1]
