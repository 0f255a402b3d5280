"""Train in a real browser: start on digits, watch the reconstruction and KL curves grow in the plotly chart,
pause, resume, stop (the ETA gone once stopped); the saved run is offered, becomes the active model when taken, and
is listed on Runs."""
from __future__ import annotations

import re

import pytest

from harness.browser import goto, key, plotly_traces, wait_idle
from harness.train_page import progress_step, progress_text, start_training
from harness.wait import wait_until

pytestmark = pytest.mark.e2e

CURVES = ("reconstruction · train", "KL · train")
CUT_JS = "b => [b, ...b.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1)"  # text cut with …


def curve_points(page) -> dict[str, int]:
    """Points in each training curve of the loss chart."""
    return {t["name"]: t["n"] for t in plotly_traces(page, key("loss_chart")) if t["name"] in CURVES}


def test_train_pause_resume_stop_and_find_the_run(app, new_runs_removed):
    goto(app, "Train")
    start_training(app, epochs=500)  # far more than the test waits for: it is stopped below

    first = wait_until(lambda: (p := curve_points(app)) and all(p.get(c, 0) >= 2 for c in CURVES) and p,
                       timeout=60, what="reconstruction and KL curves")
    wait_until(lambda: all(n > first[c] for c, n in curve_points(app).items()), timeout=60,
               what=f"the curves to grow past {first}")

    app.locator(f"{key('train_pause')} button").click()
    wait_until(lambda: progress_text(app).startswith("paused"), timeout=30, what="the job to pause")
    paused_at = progress_step(app)
    assert app.locator(f"{key('train_resume')} button").is_enabled()

    app.locator(f"{key('train_resume')} button").click()
    wait_until(lambda: progress_step(app) > paused_at, timeout=60, what=f"steps past {paused_at} after resuming")
    assert progress_text(app).startswith("running")

    app.locator(f"{key('train_stop')} button").click()
    wait_until(lambda: progress_text(app).startswith("stopped"), timeout=60, what="the job to stop")
    assert "ETA" not in progress_text(app)  # no time is left to estimate
    wait_idle(app, 60)  # the job's end redraws the whole page (until then the live fragment's copy is also there)
    offer = app.locator(key("train_use_stopped")).get_by_role("button", name="Make it active")
    assert offer.evaluate(CUT_JS) is False, "the offer's label is cut short"
    offer.click()  # Stop kept the active model: take the stopped run
    sidebar = app.locator('[data-testid="stSidebar"]')
    run_name = wait_until(lambda: re.search(r"(digits-mlp-z8-\d{8}-\d{6})", sidebar.inner_text()),
                          "the stopped run to become the active model", timeout=30).group(1)
    assert not app.locator(f"{key('train_stop')} button").is_enabled()

    goto(app, "Runs")
    app.locator(key("runs_pick")).click()
    options = app.locator('[role="option"]').all_inner_texts()
    assert any(run_name in option for option in options), options
