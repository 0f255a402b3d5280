"""The latent map epoch by epoch in a real browser: while a job trains on digits the Train page's map follows each new
epoch (drawn from the newest epoch the live fragment hands it), and every drawn point sits where the engine's aligned
projection of its saved code puts it (vae_core.epoch_maps.epoch_projection); after the job the scrubber shows every
kept epoch, each again equal to the engine's; the Runs page replays the same run with its GIF and PNG downloads."""
from __future__ import annotations

import numpy as np
import pytest

from harness.browser import goto, key, wait_idle
from harness.train_page import progress_text, start_training
from harness.wait import wait_until
from tests.e2e.test_runs import pick_run
from vae_core.epoch_maps import epoch_maps, epoch_projection
from vae_core.runs import load_run

pytestmark = pytest.mark.e2e

DRAWN_JS = "k => (window.__vaeEpochMap && window.__vaeEpochMap[k]) ? window.__vaeEpochMap[k].drawn() : null"


def drawn(page, name: str) -> dict | None:
    """The map's epoch shown, the epochs it holds, and each point's drawn position in data coordinates."""
    return page.evaluate(DRAWN_JS, name)


def engine_maps(run_dir) -> dict[int, np.ndarray]:
    """Epoch -> the engine's map of that epoch's saved codes, aligned to the saved map of the epoch before."""
    maps = epoch_maps(load_run(run_dir).history["epochs"])
    previous, out = None, {}
    for epoch, codes, saved in zip(maps.epochs, maps.codes, maps.xy):
        out[epoch] = epoch_projection(codes, previous)
        previous = saved
    return out


def assert_drawn_as_engine(frame: dict, engine: dict[int, np.ndarray]) -> None:
    xy, expected = np.array(frame["xy"]), engine[frame["epoch"]]
    span = np.ptp(expected, axis=0).max()
    assert xy.shape == expected.shape
    np.testing.assert_allclose(xy, expected, atol=1e-3 * span, err_msg=f"epoch {frame['epoch']}")


def test_the_latent_map_moves_epoch_by_epoch_and_equals_the_engines(app, runs_dir, new_runs_removed):
    goto(app, "Train")
    start_training(app, epochs=400)  # far more than the test waits for: it is stopped below
    first = wait_until(lambda: (d := drawn(app, "train_epoch_map")) and d, "the live map's first epoch", timeout=90)
    assert len(first["epochs"]) == 1  # live: the newest epoch only
    later = wait_until(lambda: (d := drawn(app, "train_epoch_map")) and d["epoch"] >= first["epoch"] + 2 and d,
                       "the live map to follow two more epochs", timeout=120)
    assert progress_text(app).startswith("running")  # followed while the job runs: no page rerun needed
    moved = np.linalg.norm(np.array(later["xy"]) - np.array(first["xy"]), axis=1)
    assert moved.max() > 0  # the points move

    app.locator(f"{key('train_stop')} button").click()
    wait_until(lambda: progress_text(app).startswith("stopped"), timeout=60, what="the job to stop")
    wait_idle(app)
    run_dir = max((p for p in runs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
                  key=lambda p: p.stat().st_mtime)
    engine = engine_maps(run_dir)
    assert_drawn_as_engine(first, engine)  # what was drawn live is what the run saved
    assert_drawn_as_engine(later, engine)

    ended = wait_until(lambda: (d := drawn(app, "train_epoch_map")) and len(d["epochs"]) > 1 and d,
                       "every kept epoch after the job", timeout=60)
    assert ended["epochs"] == sorted(engine) and ended["epoch"] == ended["epochs"][-1]
    assert app.locator(".em-scrubber").first.is_visible()
    for index in (0, len(ended["epochs"]) // 2, len(ended["epochs"]) - 1):  # the scrubber's epochs
        app.evaluate("([k, i]) => window.__vaeEpochMap[k].show(i)", ["train_epoch_map", index])
        assert_drawn_as_engine(drawn(app, "train_epoch_map"), engine)
    assert app.locator(key("train_epoch_map_gif")).is_visible() and app.locator(key("train_epoch_map_png")).is_visible()

    goto(app, "Runs")
    pick_run(app, run_dir.name)
    replay = wait_until(lambda: (d := drawn(app, "runs_epoch_map")) and d, "the Runs page's map", timeout=60)
    assert replay["epochs"] == sorted(engine)
    assert_drawn_as_engine(replay, engine)
    with app.expect_download() as download:
        app.locator(f"{key('runs_epoch_map_gif')} button").click()
    assert download.value.suggested_filename == f"{run_dir.name}-latent-map.gif"
