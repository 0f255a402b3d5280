"""Per-session state (active dataset, active model, training job) and the caches shared by every page."""
from __future__ import annotations

import json
import os
from pathlib import Path

import streamlit as st

from vae_core.data import Dataset, load_source
from vae_core.jobs import JobPool
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


@st.cache_resource(max_entries=8, show_spinner="Loading dataset…")
def _dataset(source_json: str) -> Dataset:
    return load_source(json.loads(source_json))


def dataset_for(source: str | dict) -> Dataset:
    """A dataset, loaded once per source for all sessions (read-only: never modify its arrays)."""
    return _dataset(json.dumps(source, sort_keys=True))


@st.cache_resource(max_entries=16, show_spinner="Loading model…")
def _run(path: str, mtime: float) -> Run:
    return load_run(path)


def run_for(path: str | Path) -> Run:
    """A run, loaded once per (path, modification time); reloaded when the run is saved again."""
    path = Path(path)
    return _run(str(path), (path / "model.safetensors").stat().st_mtime)


@st.cache_resource
def job_pool() -> JobPool:
    """The one pool of training jobs of this server, with its watchdog for sessions that went away."""
    pool = JobPool()
    pool.start_watchdog(session_is_alive, grace_s=float(os.environ.get("VAE_DISCONNECT_GRACE_S", 120)))
    return pool


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
    """Defaults for a new session: bundled digits, and the newest run (or the bundled one) as the active model."""
    if "dataset_source" not in st.session_state:
        st.session_state.dataset_source = "digits"
    if "active_run" not in st.session_state:
        runs = list_runs(runs_root())
        default = runs[0].path if runs else BUNDLED_RUN
        st.session_state.active_run = str(default) if (Path(default) / "model.safetensors").exists() else None


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


def run_dataset(run: Run) -> Dataset:
    """The dataset a run was trained on (falls back to the active dataset when its file is gone)."""
    source = {k: v for k, v in run.config.dataset.items() if k != "name"}
    try:
        return dataset_for(source or "digits")
    except ValueError:
        return active_dataset()
