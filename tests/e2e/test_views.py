"""The views beyond the basics, in a real browser: Train's KL-per-dimension heatmap read from the drawn plotly graph
against the saved run's history; Explore's traversal GIF downloaded after a click on the map, its frames against
torch's decoder at the clicked image's code; a clicked image's mu +- 2 sigma ellipse on the PCA map, its points read
from the map against A diag(sigma^2) A^T, and its Posterior tab; the attribute slider moving z along the mean-code
difference of two digits, its image read against torch, the server following on release; a second model decoding
the clicked code beside the first, both read against torch; a UMAP map (slow: numba compiles in the server) where a
clicked point's star lands on the point."""
from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image, ImageSequence

from harness.browser import (ARTIFACTS, click_point, explore_api, goto, key, live, screenshot, show_views,
                               wait_idle)
from tests.e2e.test_explore import bundled, canvas_image, torch_decode, url_z
from harness.train_page import progress_text, start_training
from harness.wait import wait_until
from vae_core.attributes import attribute_vector
from vae_core.config import RunConfig
from vae_core.data import load_digits
from vae_core.kl_history import kl_over_time
from vae_core.latent import aggregate_posterior_samples, encode, slider_ranges, traversal_grid
from vae_core.projections import Projection
from vae_core.media import STRIP_PX
from vae_core.runs import save_run
from vae_core.jobs import build_model

pytestmark = pytest.mark.e2e

SHOTS = ARTIFACTS / "screenshots"
TABS = '[data-testid="stTabs"]'


def shot(page, selector: str, name: str) -> None:
    """A screenshot of one part of the page (for the README: tests/e2e/screenshots.py)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    wait_idle(page)
    page.locator(selector).first.screenshot(path=str(SHOTS / name), animations="disabled")


_HEATMAP_JS = """selector => {
  const gd = document.querySelector(selector + ' .js-plotly-plot');
  const t = gd && gd._fullData && gd._fullData.find(t => t.type === 'heatmap');
  return t ? {x: Array.from(t.x), y: Array.from(t.y), z: Array.from(t.z, row => Array.from(row))} : null;
}"""


def drawn_heatmap(page, last_x=None) -> dict:
    """The heatmap plotly drew (x, y and z as the page holds them), once it is there (and ends at last_x if given)."""
    return page.wait_for_function(f"s => {{ const h = ({_HEATMAP_JS})(s); return h && "
                                  f"({'true' if last_x is None else f'h.x[h.x.length - 1] == {last_x}'}) && h; }}",
                                  arg=key("kl_heatmap"), polling=100, timeout=30_000).json_value()


def test_train_draws_kl_per_dimension_over_time(app, runs_dir, new_runs_removed):
    goto(app, "Train")
    start_training(app, epochs=3, tf_latent=3)
    wait_until(lambda: progress_text(app).startswith("finished"), "the 3-epoch job to finish", timeout=90)
    name = wait_until(lambda: re.search(r"(digits-mlp-z3-\d{8}-\d{6})", app.locator('[data-testid="stSidebar"]')
                                        .inner_text()), "the run to become the active model", timeout=30).group(1)
    wait_idle(app)
    history = json.loads((runs_dir / name / "history.json").read_text())

    by_step = kl_over_time(history["steps"], history["epochs"], "step")
    drawn = drawn_heatmap(app, last_x=int(by_step.x[-1]))
    assert drawn["y"] == ["z0", "z1", "z2"]
    np.testing.assert_array_equal(drawn["x"], by_step.x)
    np.testing.assert_allclose(drawn["z"], by_step.kl, rtol=1e-6)
    screenshot(app, SHOTS / "train-kl-heatmap.png")

    app.locator(f"{key('chart_x')} button", has_text="epoch").click()
    drawn = drawn_heatmap(app, last_x=3)
    np.testing.assert_array_equal(drawn["x"], [1, 2, 3])
    np.testing.assert_allclose(drawn["z"], np.array([e["val_kl_per_dim"] for e in history["epochs"]]).T, rtol=1e-6)


def test_a_clicked_codes_traversals_download_as_a_gif_of_the_decoders_images(app):
    row = click_point(app, 412)
    run, digits = bundled(), load_digits()
    _, mu, logvar = encode(run.model, digits)
    wait_until(lambda: url_z(app) and np.allclose(url_z(app), mu[row], atol=1e-3), timeout=30, what="the server's z")
    wait_idle(app)
    show_views(app)
    app.locator(live("grid")).wait_for()
    dims = [int(t.removeprefix("z")) for t in app.locator(f'{live("grid")} .vx-strip-label').all_inner_texts()]
    with app.expect_download(timeout=30_000) as info:
        app.locator(f"{key('explore_dl_traverse_gif')} button").click()
    download = info.value
    assert download.suggested_filename.endswith(".gif")
    SHOTS.mkdir(parents=True, exist_ok=True)
    download.save_as(SHOTS / "explore-traversals.gif")  # shown in the README as it is (tests/e2e/screenshots.py)
    frames = [np.array(f.convert("L")) for f in ImageSequence.Iterator(Image.open(io.BytesIO(
        open(download.path(), "rb").read())))]
    assert len(frames) == 2 * 9 - 2 and frames[0].shape == (56 + STRIP_PX, len(dims) * 58 - 2)

    ranges = slider_ranges(aggregate_posterior_samples(mu, logvar, 5000, seed=0))  # as the page's latents
    paths = traversal_grid(mu[row], dims, ranges, 9)  # (R, 9, D)
    for frame, t in ((frames[0], 0), (frames[4], 4), (frames[12], 4)):  # 0..8 then 7..1: frame 12 is step 4 again
        expected = np.round(np.clip(torch_decode(run.model, paths[:, t])[:, 0], 0, 1) * 255)
        for r in range(len(dims)):
            tile = frame[:56:7, r * 58: r * 58 + 56: 7].astype(float)  # one pixel per 7x7 block
            np.testing.assert_allclose(tile, expected[r], atol=1, err_msg=f"frame of step {t}, z{dims[r]}")


def test_a_clicked_images_posterior_ellipse_on_the_pca_map(app):
    row = click_point(app, 412)
    ellipses = wait_until(lambda: explore_api(app, "ellipses"), "the clicked image's ellipse", timeout=30)
    assert [e["row"] for e in ellipses] == [row]

    _, mu, logvar = encode(bundled().model, load_digits())
    a = Projection("pca").fit(mu).components_.astype(np.float64)
    ring = np.array(ellipses[0]["points"]).reshape(-1, 2)
    centre, cov = a @ (mu[row] - mu.mean(0)), a @ np.diag(np.exp(logvar[row])) @ a.T
    np.testing.assert_allclose(ring.mean(0), centre, atol=1e-4)
    offsets = ring - centre
    np.testing.assert_allclose(np.einsum("pi,ij,pj->p", offsets, np.linalg.inv(cov), offsets), 4.0, rtol=1e-3)

    show_views(app)
    app.locator('[data-testid="stTab"]', has_text="Posterior").click()
    app.get_by_text(f"Image #{row}", exact=False).first.wait_for(timeout=30_000)
    shot(app, live("map"), "explore-ellipse.png")
    shot(app, TABS, "explore-posterior.png")


SET_ALPHA_JS = """([selector, alpha, release]) => {
  const input = document.querySelector(selector);
  input.value = String(alpha);
  input.dispatchEvent(new Event('input', {bubbles: true}));
  if (release) input.dispatchEvent(new Event('change', {bubbles: true}));
}"""


def test_the_attribute_slider_moves_z_along_the_vector_and_decodes_live(app):
    show_views(app)
    app.locator('[data-testid="stTab"]', has_text="Attributes").click()
    part = live("attribute")
    app.locator(part).wait_for(timeout=30_000)
    wait_idle(app)
    digits = load_digits()
    run = bundled()
    mu = encode(run.model, digits)[1]
    v = attribute_vector(mu, digits.labels == 0, digits.labels == 9).direction  # the defaults: from 0 to 9
    z0 = np.asarray(explore_api(app, "z"))
    slider = f"{part} input.vx-attribute"
    for alpha in (0.25, 0.8):  # while dragging: z moves, the image is redrawn, nothing is sent yet
        drawn = int(app.locator(part).get_attribute("data-drawn") or 0)
        app.evaluate(SET_ALPHA_JS, [slider, alpha, False])
        np.testing.assert_allclose(explore_api(app, "z"), z0 + alpha * v, atol=1e-5)
        wait_until(lambda: int(app.locator(part).get_attribute("data-drawn") or 0) > drawn, "the image redrawn", 10)
        expected = torch_decode(run.model, (z0 + alpha * v)[None].astype(np.float32))[0, 0]
        np.testing.assert_allclose(canvas_image(app, f"{part} canvas.vx-canvas", (8, 8)), expected, atol=1.5 / 255)
    app.evaluate(SET_ALPHA_JS, [slider, 0.8, True])
    wait_until(lambda: np.allclose(url_z(app), z0 + 0.8 * v, atol=1e-3), timeout=30, what="the server to take z")
    shot(app, TABS, "explore-attributes.png")


def test_a_second_model_decodes_the_same_z_beside_the_first(app, runs_dir, new_runs_removed):
    base = bundled()
    second = build_model(base.config.model, seed=7)  # same 8-D latent space and images, other weights
    save_run(runs_dir / "digits-untrained", second, RunConfig(model=base.config.model, dataset={"kind": "digits"}))
    app.reload()
    app.locator(live("map")).wait_for(timeout=60_000)
    wait_idle(app)
    show_views(app)
    app.locator('[data-testid="stTab"]', has_text="Compare").click()
    part = live("compare")
    app.locator(part).wait_for(timeout=30_000)
    names = [n.split(" ")[0] for n in app.locator(f"{part} .vx-note").all_inner_texts()]
    assert sorted(names) == ["digits-default", "digits-untrained"]  # the active model (the newest run) first
    models = [{"digits-default": base.model, "digits-untrained": second}[n] for n in names]

    app.locator(live("map")).scroll_into_view_if_needed()
    point = explore_api(app, "pointOnScreen", 412)
    app.mouse.move(point["x"], point["y"])
    row = int(app.locator(live("map")).get_attribute("data-hover-row"))
    drawn = int(app.locator(part).get_attribute("data-drawn") or 0)
    app.mouse.click(point["x"], point["y"])
    wait_until(lambda: int(app.locator(part).get_attribute("data-drawn") or 0) > drawn, "both images redrawn", 10)
    z = encode(models[0], load_digits())[1][row][None]  # a click goes to the active model's code of the image
    np.testing.assert_allclose(explore_api(app, "z"), z[0], atol=1e-5)
    canvases = [f"{part} .vx-image:nth-child({i}) canvas" for i in (1, 2)]
    for selector, model in zip(canvases, models):
        expected = torch_decode(model, z)[0, 0]
        np.testing.assert_allclose(canvas_image(app, selector, (8, 8)), expected, atol=1.5 / 255)
    shot(app, TABS, "explore-compare.png")


@pytest.mark.slow
def test_a_umap_map_places_the_star_on_a_clicked_point(app):
    pytest.importorskip("umap")
    app.locator(live("map")).wait_for()
    app.locator(key("w_explore_method")).click()
    app.locator('[role="option"]', has_text="UMAP").click()
    app.locator(f"{key('explore_fit')} button").click()  # its settings are chosen before the fit: it starts on Fit
    # the map is away while the fit runs (a progress line in its place): wait for the UMAP map itself
    app.locator(f'{live("map")}[data-method="umap"]').wait_for(timeout=300_000)
    wait_idle(app, 120)
    captions = app.locator('[data-testid="stCaptionContainer"]').all_inner_texts()
    assert any("UMAP has no map for new points" in t for t in captions)
    app.locator(live("map")).scroll_into_view_if_needed()
    point = explore_api(app, "pointOnScreen", 412)
    app.mouse.move(point["x"], point["y"])
    row = int(app.locator(live("map")).get_attribute("data-hover-row"))
    app.mouse.click(point["x"], point["y"])
    mu = encode(bundled().model, load_digits())[1][row]
    np.testing.assert_allclose(explore_api(app, "z"), mu, atol=1e-5)
    on_screen = explore_api(app, "pointOnScreen", row)
    star = explore_api(app, "star")  # a fitted code's nearest code is itself (weight 1e6): the star is on its point
    assert abs(star["x"] - on_screen["x"]) < 1.5 and abs(star["y"] - on_screen["y"]) < 1.5
    shot(app, live("map"), "explore-umap.png")
