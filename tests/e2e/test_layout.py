"""What the walk at 1400 px found cut off, read from the browser's own layout: the Runs table within its frame (a
long run name and all), both buttons of the curve overlay's x-axis toggle inside their column, and on Explore the
t-SNE settings, its estimate and its Fit button drawn whole (the button beside "Sample z" read "S.."), then the map
fitted with the chosen settings behind a progress bar."""
from __future__ import annotations

import shutil

import pytest

from harness.browser import ARTIFACTS, ROOT, goto, key, live, screenshot, wait_idle
from harness.wait import wait_until

pytestmark = pytest.mark.e2e

LONG_NAME = "omniglot-images_background-conv-z16-20261207-172511"  # as Train names runs: data-arch-z-stamp

OVERFLOW_JS = """selector => {
  const e = document.querySelector(selector);
  return e ? e.scrollWidth - e.clientWidth : null;
}"""

INSIDE_JS = """selector => {
  const e = document.querySelector(selector);
  const col = e.closest('[data-testid="stColumn"]');
  const buttons = e.querySelectorAll('button');
  return col.getBoundingClientRect().right - buttons[buttons.length - 1].getBoundingClientRect().right;
}"""

CUT_JS = """selector => Array.from(document.querySelectorAll(selector))
  .filter(b => [b, ...b.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1)).map(b => b.innerText)"""


def test_the_runs_table_and_the_overlay_toggle_fit_at_1400_px(app, runs_dir, new_runs_removed):
    runs_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "assets" / "runs" / "digits-default", runs_dir / LONG_NAME)
    goto(app, "Runs")
    assert app.viewport_size["width"] == 1400
    table = '[data-testid="stDataFrame"] .dvn-scroller'
    app.locator(table).wait_for()
    assert app.evaluate(OVERFLOW_JS, table) <= 0, "the runs table scrolls sideways"
    assert app.evaluate(INSIDE_JS, key("runs_overlay_x")) >= 0, "the x-axis toggle runs past its column"
    screenshot(app, ARTIFACTS / "screenshots" / "runs-1400.png")


def test_tsne_settings_estimate_and_fit_are_drawn_whole_then_the_map(app):
    app.locator(live("map")).wait_for()
    app.locator(key("w_explore_method")).click()
    app.locator('[role="option"]', has_text="t-SNE").click()
    fit = app.locator(f"{key('explore_fit')} button")
    fit.wait_for(timeout=120_000)
    wait_idle(app, 120)
    assert app.get_by_text("t-SNE on 1,797 codes: about").count() == 1  # the estimate, before anything is fitted
    assert app.evaluate(CUT_JS, '[data-testid="stMain"] button') == []  # no button label cut short
    screenshot(app, ARTIFACTS / "screenshots" / "explore-tsne-settings.png")
    app.locator(key("w_explore_tsne_iterations")).get_by_role("slider").press("Home")  # 250: a quicker fit
    wait_idle(app, 60)
    assert app.get_by_text("t-SNE on 1,797 codes: about").count() == 1  # the estimate follows the settings
    fit.click()
    wait_until(lambda: app.locator(live("map")).get_attribute("data-method") == "tsne", "the t-SNE map", timeout=300)
