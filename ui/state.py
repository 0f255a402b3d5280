"""Per-session state: the active dataset, the active model, this session's training job and its uploads' results.
What all sessions share (the loaded datasets and runs, the job pool, the sharing registry) is in ui/server.py."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import streamlit as st

from ui.server import BUNDLED_RUN, dataset_for, run_for, runs_root
from ui.sharing import created_elsewhere, note_active, upload_visible
from vae_core.data import Dataset
from vae_core.runs import Run, list_runs
from vae_core.runs.kept_data import kept_digest

if TYPE_CHECKING:
    from vae_core.jobs import ProcessJob


def init_state() -> None:
    """Defaults for a new session: bundled digits, and the newest run not created by another connected session (or
    the bundled one) as the active model."""
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


@contextlib.contextmanager
def rerun_if_deleted(run: Run):
    """Around a fragment that shows a run: the run deleted from disk before or while it runs (by another session, or
    the Runs page in another tab) runs the whole page again, which deactivates it, instead of showing a file error."""
    if not run.exists():
        st.rerun(scope="app")
    try:
        yield
    except OSError:
        if run.exists():
            raise
        st.rerun(scope="app")


def set_active_run(path: str | Path) -> Run:
    run = run_for(path)
    st.session_state.active_run = str(path)
    return run


def current_job() -> ProcessJob | None:
    """This session's latest training job (running, paused or ended), or None."""
    return st.session_state.get("job")


STOPPED_RUN = "stopped_run"  # a stopped job's run, offered on Train instead of replacing the active model


def adopt_finished_job() -> None:
    """Once this session's job has finished, its saved run becomes the active model (once per job). A stopped job's
    run becomes it only when there is none: a few steps of training must not replace a good model (the Train page
    offers the stopped run instead, under STOPPED_RUN)."""
    job = current_job()
    if job is None or job.state not in ("finished", "stopped") or st.session_state.get("adopted_job") == id(job):
        return
    st.session_state.adopted_job = id(job)
    if job.run_dir is None or not (job.run_dir / "model.safetensors").exists():
        return
    if job.state == "stopped" and active_run() is not None:
        st.session_state[STOPPED_RUN] = str(job.run_dir)
        return
    set_active_run(job.run_dir)


def run_dataset(run: Run) -> Dataset:
    """The dataset a run was trained on (falls back to the active dataset when its data cannot be had: see
    run_own_dataset)."""
    try:
        return run_own_dataset(run)
    except ValueError:
        return active_dataset()


def run_own_dataset(run: Run) -> Dataset:
    """The dataset a run was trained on: its kept copy when it has one (the copy goes wherever its run goes: every
    session that may read the run), else its source unless that is another session's upload (uploads are private
    to the sessions that made them). ValueError says why it cannot be had."""
    source = run.config.data_source
    if kept_digest(source) is None and not upload_visible(source):
        raise ValueError(f"{run.name} was trained on another session's upload")
    return dataset_for(source)


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
