"""Shared test helpers: stopping the jobs AppTests started (polling with a deadline lives in harness/wait.py)."""
from __future__ import annotations


def stop_session_jobs(apps) -> None:
    """Stop and join the training job each AppTest session started (a fixture's teardown)."""
    for at in apps:
        if "job" in at.session_state:
            at.session_state["job"].stop()
            at.session_state["job"].join(timeout=30)
