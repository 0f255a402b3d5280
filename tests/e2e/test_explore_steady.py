"""Explore's layout holds still while the page fills in: the map and the live panel stay where they were drawn first
when the background encoding ends (its note and progress bar sit in a place of fixed height, the note alone once
every code is in) and when the weak-model check ends (its verdict in a place of one height above the map, a weak
model's warning and remedies opened over the page from there), and a link's note above them stays through the
encoding's reruns (they are not the user's). A pointer on the map stays on the point it was on."""
from __future__ import annotations

import pytest

from harness.browser import ARTIFACTS, live, open_explore, wait_idle
from harness.wait import wait_until
from vae_core.config import ModelConfig, RunConfig
from vae_core.jobs import build_model
from vae_core.runs import save_run

pytestmark = pytest.mark.e2e

N = 20_000  # a few seconds of encoding after the first block, on 2 shared cores
SHAPES = {"kind": "shapes", "n": N, "size": 32, "seed": 0, "name": "shapes"}
PROGRESS = '[data-testid="stProgress"]'
CAPTION = '[data-testid="stCaptionContainer"]'
CLIPPED_JS = """() => Array.from(document.querySelectorAll('[data-testid="stVerticalBlock"]'))
  .filter(e => getComputedStyle(e).overflowY === 'auto' && e.scrollHeight > e.clientHeight + 1)
  .map(e => e.innerText)"""  # the text of fixed-height places too small for what they hold (a scroll bar in them)
LINK_NOTE = '[data-testid="stAlert"]:has-text("The link\'s colouring (nonsense) does not apply")'
WEAK = '[data-testid="stPopover"] button:has-text("is a weak model")'  # the check's verdict, its warning behind it


def tops(page) -> dict[str, float]:
    """The map's and the live panel's top edges on screen, in CSS pixels."""
    return {role: page.locator(live(role)).bounding_box()["y"] for role in ("map", "panel")}


@pytest.mark.usefixtures("new_runs_removed")
def test_the_map_and_the_panel_stay_put_when_the_encoding_ends(browser, server, runs_dir, _opened):
    config = ModelConfig(input_shape=(1, 32, 32), latent_dim=6, arch="conv", hidden_sizes=(32,))
    save_run(runs_dir / "zz-steady-20k", build_model(config, seed=1).eval(), RunConfig(model=config, dataset=SHAPES))
    # the newest run: the active model, untrained (a weak one); opened from a link whose colouring this data lacks
    page, _ = open_explore(browser, f"{server.url}/?colour=nonsense")
    _opened.append(page)
    map_ = page.locator(live("map"))
    assert page.locator(PROGRESS).is_visible(), "the test needs the encoding still running when the map is drawn"
    assert int(map_.get_attribute("data-points")) < N
    before = tops(page)
    assert page.locator(LINK_NOTE).is_visible()
    assert page.evaluate(CLIPPED_JS) == []
    page.screenshot(path=str(ARTIFACTS / "explore-steady-encoding.png"))

    wait_until(lambda: map_.get_attribute("data-points") == str(N), timeout=600, what="every code on the map")
    wait_idle(page)  # the page's last run (the weak-model check in the first) is over
    after = tops(page)
    for role in before:
        assert abs(after[role] - before[role]) <= 2, f"the {role} moved from y={before[role]} to y={after[role]}"
    assert page.evaluate(CLIPPED_JS) == []
    assert page.locator(PROGRESS).count() == 0 and page.locator(CAPTION, has_text=f"{N:,} images encoded in").count()
    assert page.locator(LINK_NOTE).is_visible(), "the link's note stays through the encoding's reruns"

    page.locator(WEAK).click()  # the check's verdict; the warning and its remedies open over the page
    page.locator('[data-testid="stAlert"]', has_text="is a weak model").wait_for()
    assert page.get_by_text("A remedy opens Train with it set in the form").is_visible() and tops(page) == after
    page.screenshot(path=str(ARTIFACTS / "explore-steady-encoded.png"))
