"""Polling with a deadline: tests and benchmarks never sleep blindly."""
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
