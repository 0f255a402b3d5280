"""Three browser sessions train at once on one server, then explore: each sees only its own curves and its own
model (latent size, epochs and run name all differ, so any leak between sessions shows)."""
from __future__ import annotations

import math
import re

import pytest

from harness.browser import ARTIFACTS, goto, key, live, plotly_traces, screenshot, wait_idle
from harness.train_page import progress_text, start_training
from harness.wait import wait_until
from vae_core.config import TrainConfig

pytestmark = pytest.mark.e2e

N_TRAIN = 1797 - math.ceil(0.1 * 1797)  # digits minus the default 10% validation split
SESSIONS = [  # (latent dimensions, epochs) per browser session
    (2, 3),
    (4, 5),
    (8, 8),
]


def total_steps(epochs: int, batch_size: int = TrainConfig.batch_size) -> int:  # the form's default batch
    return epochs * math.ceil(N_TRAIN / batch_size)


def test_three_sessions_train_and_explore_without_seeing_each_other(open_app, new_runs_removed):
    pages = [open_app() for _ in SESSIONS]
    for page, (latent, epochs) in zip(pages, SESSIONS):
        goto(page, "Train")
        start_training(page, epochs=epochs, tf_latent=latent)

    names = []
    for page, (latent, epochs) in zip(pages, SESSIONS):
        steps = total_steps(epochs)
        wait_until(lambda: progress_text(page).startswith("finished"), f"the {latent}-D job to finish", timeout=180)
        # "finished" is drawn at the top of the script run that draws the final curves below it (and, since a
        # finished job is diagnosed, that run takes longer): read the chart once the run is over, not midway
        # (the 8-D chart was read at step 47 of 56 once)
        wait_idle(page)
        assert f"step {steps}/{steps}" in progress_text(page), progress_text(page)
        train_x = {t["x_last"] for t in plotly_traces(page, key("loss_chart")) if t["name"].endswith("· train")}
        assert train_x == {steps}, f"the {latent}-D session's curves end at its own last step {steps}: {train_x}"
        name = wait_until(lambda: re.search(rf"(digits-mlp-z{latent}-\d{{8}}-\d{{6}}) · mlp · {latent}-D latent",
                                            page.locator('[data-testid="stSidebar"]').inner_text()), timeout=30,
                          what=f"the {latent}-D run as the active model").group(1)
        names.append(name)
    assert len(set(names)) == len(SESSIONS)
    screenshot(pages[-1], ARTIFACTS / "screenshots" / "train-finished.png")

    for page, name, (latent, _) in zip(pages, names, SESSIONS):
        goto(page, "Explore")
        caption = page.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').first.inner_text()
        assert caption.startswith(f"{name} (mlp, {latent}-D latent)"), caption
        page.locator(live("panel")).wait_for()
        assert page.locator(f'{live("panel")} input.vx-slider').count() == latent, "one live slider per latent dimension"
        assert name in page.locator('[data-testid="stSidebar"]').inner_text()
