"""The map at the size of real datasets, in Chromium: 100,000 points drawn whole (the map's own count of the points
it drew), hover on a point whose image block was never fetched shows the dataset's own pixels (fetched on demand,
ui/explore/image_blocks.py), and a box selects what numpy counts inside it (up to the points within a pixel of its
edges, where the pointer's pixel rounding decides)."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from harness.browser import drag, explore_api, live, wait_idle
from harness.wait import wait_until
from tests.e2e.test_explore import canvas_image
from vae_core.config import ModelConfig, RunConfig
from vae_core.data import FILES_KIND
from vae_core.jobs import build_model
from vae_core.projections import Projection
from vae_core.runs import save_run

pytestmark = pytest.mark.e2e

N = 100_000
SIDE = 10  # not digits' 8x8: the run's own data becomes the active dataset


@pytest.mark.usefixtures("new_runs_removed")
def test_a_100k_point_map_is_drawn_whole_hovered_and_box_selected(open_app, runs_dir, tmp_path):
    images = (np.random.default_rng(0).random((N, SIDE, SIDE)) * 255).astype(np.uint8)
    np.save(tmp_path / "many.npy", images)
    config = ModelConfig(input_shape=(1, SIDE, SIDE), latent_dim=3, hidden_sizes=(16,))
    model = build_model(config, seed=1).eval()
    data = {"kind": FILES_KIND, "path": str(tmp_path / "many.npy"), "name": "many"}
    save_run(runs_dir / "zz-100k", model, RunConfig(model=config, dataset=data))  # newest: the active model
    page = open_app()
    map_ = page.locator(live("map"))
    map_.wait_for(timeout=180_000)
    map_.scroll_into_view_if_needed()
    # Explore opens on a first block of codes and fills in as the rest are encoded (vae_core/encoding.py)
    wait_until(lambda: map_.get_attribute("data-points") == str(N) and map_.get_attribute("data-total") == str(N),
               timeout=180, what="the map filled in with every code")
    wait_until(lambda: map_.get_attribute("data-drawn") == str(N), timeout=30, what="every point drawn")

    with torch.no_grad():
        mu = model.encode(torch.as_tensor(images[:, None] / np.float32(255)))[0].numpy()
    xy = Projection("pca").fit(mu).transform(mu)  # the page's map of a 3-D latent space
    far = int(np.argmax(xy[:, 0]))  # the right-most point: nothing near it hovered yet, its block never fetched
    # the rest of the page first (the weak-model check comes after the map, the encoding's last rerun), then the map
    # back in view: a point's screen position read before the page settled is not under the mouse
    wait_idle(page)
    map_.scroll_into_view_if_needed()
    point = explore_api(page, "pointOnScreen", far)
    page.mouse.move(point["x"] - 40, point["y"] + 40)
    page.mouse.move(point["x"], point["y"])
    wait_until(lambda: map_.get_attribute("data-hover-row") is not None, timeout=30, what="a hovered point")
    hovered = int(map_.get_attribute("data-hover-row"))
    wait_until(lambda: map_.get_attribute("data-hover-image") == str(hovered), timeout=30,
               what="the hovered point's image block")
    assert f"#{hovered}" in page.locator(".vx-tooltip").inner_text()
    original = canvas_image(page, ".vx-tooltip figure:nth-of-type(1) canvas", (SIDE, SIDE))
    np.testing.assert_allclose(original, images[hovered] / 255, atol=1.5 / 255)
    assert explore_api(page, "timing")["hoverImage"]["count"] >= 1

    page.mouse.move(5, 5)
    page.locator(".vx-toolbar button", has_text="Box").click()
    (x0, x1), (y0, y1) = np.quantile(xy[:, 0], [0.3, 0.6]), np.quantile(xy[:, 1], [0.35, 0.7])
    a, b = explore_api(page, "dataToScreen", x0, y1), explore_api(page, "dataToScreen", x1, y0)
    drag(page, (a["x"], a["y"]), [(b["x"], b["y"])])
    inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    px, py = (b["x"] - a["x"]) / (x1 - x0), (b["y"] - a["y"]) / (y1 - y0)  # pixels per unit
    near = lambda v, edge, k: np.abs((v - edge) * k) <= 1.0  # noqa: E731  (within a pixel of an edge)
    edge = (inside | ((xy[:, 0] >= x0 - 1 / px) & (xy[:, 0] <= x1 + 1 / px) & (xy[:, 1] >= y0 - 1 / py)
                      & (xy[:, 1] <= y1 + 1 / py))) & (near(xy[:, 0], x0, px) | near(xy[:, 0], x1, px)
                                                      | near(xy[:, 1], y0, py) | near(xy[:, 1], y1, py))
    selected = int(map_.get_attribute("data-selected"))
    assert int(inside.sum()) > 5000 and abs(selected - int(inside.sum())) <= int(edge.sum())
    shown = page.locator('[data-testid="stMarkdownContainer"]', has_text=re.compile(r"Selected: [\d,]+ images")).first
    shown.wait_for(timeout=60_000)
    assert int(re.search(r"Selected: ([\d,]+)", shown.inner_text()).group(1).replace(",", "")) == selected
