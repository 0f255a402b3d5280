"""Server-wide limits in a real browser, on a server of their own (one training slot, a 2 s disconnect grace): a
second session's Start is refused with the limit's message while the first session trains and stays connected
(however long past the grace period); once the first session's tab closes, the watchdog stops its job (the run stays
on disk) and the second session can train."""
from __future__ import annotations

import time

import pytest

from harness.browser import ARTIFACTS, goto, key, new_page, start_server, wait_idle
from harness.train_page import progress_step, progress_text, start_training
from harness.wait import wait_until

pytestmark = pytest.mark.e2e

GRACE_S = 2.0
WATCHDOG_S = 5.0  # ui.server.job_pool's watchdog interval (JobPool.start_watchdog's default)
ALERT = '[data-testid="stAlert"]'


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory, browser):
    runs = tmp_path_factory.mktemp("limits") / "runs"
    srv = start_server("app.py", ARTIFACTS / "streamlit-limits.log",
                       env={"VAE_RUNS_DIR": str(runs), "VAE_THREADS": "1", "VAE_MAX_JOBS": "1",
                            "VAE_DISCONNECT_GRACE_S": str(GRACE_S)})
    yield srv, runs
    srv.stop()


def press_start(page) -> None:
    page.locator(f"{key('train_start')} button").click()


def refusal(page) -> str:
    alerts = page.locator(ALERT, has_text="training jobs are already running on this server")
    return alerts.first.inner_text() if alerts.count() else ""


def test_the_job_limit_is_hit_and_a_closed_sessions_job_stops_after_the_grace(one_slot, browser, _opened):
    server, runs = one_slot
    a = new_page(browser, server.url)
    b = new_page(browser, server.url)
    _opened.extend([a, b])
    goto(a, "Train")
    start_training(a, epochs=5000)
    goto(b, "Train")
    press_start(b)
    message = wait_until(lambda: refusal(b), "the limit's message in the second session", timeout=60)
    assert "(limit 1)" in message, message
    assert not b.locator(f"{key('train_stop')} button").is_enabled()  # nothing started for B

    connected_until = time.monotonic() + GRACE_S + WATCHDOG_S + 2  # past the grace and a watchdog round
    step = progress_step(a)
    wait_until(lambda: time.monotonic() > connected_until and progress_step(a) > step, "A to keep training while "
               "connected past the grace period", timeout=60)
    assert progress_text(a).startswith("running")  # a live session keeps its job

    (run_dir,) = [p for p in runs.iterdir() if not p.name.startswith(".")]
    a.context.close()
    _opened.remove(a)
    closed = time.monotonic()

    def b_trains() -> bool:
        if progress_text(b).startswith("running"):
            return True
        press_start(b)  # refused while A's job runs; each press asks the server once
        wait_idle(b, 60)
        return progress_text(b).startswith("running")

    wait_until(b_trains, "the second session to get the slot", timeout=60)
    freed_s = time.monotonic() - closed
    print(f"\nslot freed {freed_s:.1f} s after the session closed (grace {GRACE_S:g} s, watchdog every "
          f"{WATCHDOG_S:g} s)")
    assert freed_s >= GRACE_S  # not before the grace period
    assert (run_dir / "model.safetensors").is_file()  # the stopped session's run stays on disk
    b.locator(f"{key('train_stop')} button").click()
    wait_until(lambda: progress_text(b).startswith("stopped"), "B's job to stop", timeout=60)
