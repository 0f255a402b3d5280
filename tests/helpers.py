"""Shared test helpers: polling with a deadline (tests never sleep blindly), stopping the jobs AppTests started."""
from __future__ import annotations

import threading
import time


def wait_until(condition, what: str = "condition", timeout: float = 120.0):
    """Poll condition() every 20 ms until it returns something truthy (and return that); fail after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        threading.Event().wait(0.02)


def stop_session_jobs(apps) -> None:
    """Stop and join the training job each AppTest session started (a fixture's teardown)."""
    for at in apps:
        if "job" in at.session_state:
            at.session_state["job"].stop()
            at.session_state["job"].join(timeout=30)
