"""Explore opens at once on a model of 20,000 images: the map and the live panel come with a first block of codes, the
rest is encoded in the background while a progress bar runs and the map fills in, and every code is then kept with
the run, so that a restarted server opens the same model from its kept codes without encoding again."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from harness.browser import ARTIFACTS, explore_api, live, open_explore, start_server, wait_idle
from harness.wait import wait_until
from ui.explore.projection import MAX_PLOT_POINTS
from vae_core.config import ModelConfig, RunConfig
from vae_core.jobs import build_model
from vae_core.runs import save_run
from vae_core.runs.codes_cache import CODES_FOLDER

pytestmark = pytest.mark.e2e

RESTARTED_ENV = {"VAE_THREADS": "1", "VAE_DISCONNECT_GRACE_S": "5"}  # as the session's server (tests/e2e/conftest.py)
N = 20_000
SHAPES_20K = {"kind": "shapes", "n": N, "size": 32, "seed": 0, "name": "shapes"}
CANVAS_JS = """selector => {
  const c = document.querySelector(selector);
  return {width: c.width, height: c.height, pixels: Array.from(c.getContext('2d').getImageData(0, 0, c.width,
    c.height).data)};
}"""


def opened(browser, url: str, pages: list) -> tuple[object, float]:
    """harness.open_explore, its page closed after the test (and checked for Streamlit exceptions)."""
    page, seconds = open_explore(browser, url)
    pages.append(page)
    return page, seconds


def caption(page, pattern: str) -> str | None:
    found = page.locator('[data-testid="stCaptionContainer"]', has_text=re.compile(pattern))
    return found.first.inner_text() if found.count() else None


def points(page) -> int:
    return int(page.locator(live("map")).get_attribute("data-points"))


def panel_image(page, shape: tuple[int, int]) -> np.ndarray:
    """The live panel's image, sampled at its cells' centres, grey values in [0, 1]: (H, W)."""
    got = page.evaluate(CANVAS_JS, f'{live("panel")} canvas.vx-canvas')
    h, w = shape
    rgba = np.asarray(got["pixels"], np.float32).reshape(got["height"], got["width"], 4)
    sy, sx = got["height"] / h, got["width"] / w
    return rgba[(np.arange(h) * sy + sy / 2).astype(int)][:, (np.arange(w) * sx + sx / 2).astype(int), 0] / 255


def check_decodes_like_torch(page, model) -> None:
    z = np.asarray(explore_api(page, "z"), np.float32)
    with torch.no_grad():
        expected = model.decode_mean(torch.as_tensor(z[None])).numpy()[0, 0]
    wait_until(lambda: np.allclose(panel_image(page, (32, 32)), expected, atol=1.5 / 255), timeout=30,
               what="the panel to show the torch decode of z")
    zs = torch.randn(4, len(z), generator=torch.Generator().manual_seed(3)).numpy()
    decoded = np.asarray(explore_api(page, "decode", zs.tolist())["images"]).reshape(4, 1, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(decoded, model.decode_mean(torch.as_tensor(zs)).numpy(), atol=1e-4)


@pytest.mark.usefixtures("new_runs_removed")
def test_a_20k_model_opens_at_once_and_a_restarted_server_reads_its_kept_codes(browser, server, runs_dir, _opened):
    config = ModelConfig(input_shape=(1, 32, 32), latent_dim=6, arch="conv", hidden_sizes=(32,))
    model = build_model(config, seed=1).eval()
    path = save_run(runs_dir / "zz-open-20k", model, RunConfig(model=config, dataset=SHAPES_20K))  # newest: active
    drawn = min(N, MAX_PLOT_POINTS)

    page, first_open = opened(browser, server.url, _opened)
    first_points = points(page)
    wait_until(lambda: caption(page, rf"{N:,} images encoded in"), timeout=600, what="every code encoded")
    wait_until(lambda: points(page) == drawn, timeout=60, what="the map filled in")
    wait_idle(page)
    check_decodes_like_torch(page, model)
    kept = wait_until(lambda: list((path / CODES_FOLDER).glob("*.safetensors")), timeout=60, what="the codes kept")
    assert len(kept) == 1
    mtime = kept[0].stat().st_mtime_ns

    restarted = start_server("app.py", ARTIFACTS / "streamlit-e2e-restarted.log",
                             env={**RESTARTED_ENV, "VAE_RUNS_DIR": str(runs_dir)})
    try:
        again, second_open = opened(browser, restarted.url, _opened)
        assert points(again) == drawn, "every point at once: nothing left to encode"
        assert caption(again, rf"{N:,} codes read from the cache kept with the run")
        assert again.locator('[data-testid="stProgress"]').count() == 0
        wait_idle(again)
        check_decodes_like_torch(again, model)
        assert [p.stat().st_mtime_ns for p in (path / CODES_FOLDER).glob("*.safetensors")] == [mtime]
    finally:
        restarted.stop()
    print(f"\nExplore on {N:,} conv shapes: interactive {first_open:.2f} s after opening with {first_points:,} points "
          f"(first open, fresh server); {second_open:.2f} s with {drawn:,} (restarted server, kept codes)")
