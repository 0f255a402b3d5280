"""Explore in a real browser. The browser's decoder and encoder give torch's numbers (MLP and conv, Bernoulli and
Gaussian, both kernels, image sides divisible by 4 or not); dragging a slider redraws the image, the traversal strip
and the map's star during the drag and the server follows on release; hovering a point shows its image and its
reconstruction; a click goes to the image's code at once; dragging the star moves z in the PCA plane; a box selects
points and the server shows them; drawing on the pad encodes the drawing like torch and "Use as z" moves there; a
server slider moves image and star; the Traversals tab's tiles are torch's decodes of
vae_core.latent.traversal_grid."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch

from harness.browser import (ARTIFACTS, ROOT, click_point, drag, explore_api, key, live, next_frame, open_pad,
                               screenshot, show_views, wait_idle)
from harness.wait import wait_until
from vae_core.config import ModelConfig, RunConfig
from vae_core.data import FILES_KIND, load_digits, load_source
from vae_core.latent import aggregate_posterior_samples, encode, slider_ranges, traversal_grid
from vae_core.projections import Projection
from vae_core.runs import load_run, save_run
from vae_core.jobs import build_model

pytestmark = pytest.mark.e2e

DIGITS = {"kind": "digits", "name": "digits"}
SHAPES = {"kind": "shapes", "n": 300, "size": 32, "seed": 0, "name": "shapes"}
MODELS = {  # name: (model settings, the data it "trained" on)
    "mlp-bernoulli": (dict(input_shape=(1, 8, 8), latent_dim=4, hidden_sizes=(32,)), DIGITS),
    "mlp-gaussian": (dict(input_shape=(1, 8, 8), latent_dim=3, hidden_sizes=(24, 16), likelihood="gaussian"), DIGITS),
    "conv-bernoulli": (dict(input_shape=(1, 32, 32), latent_dim=5, arch="conv", hidden_sizes=(32,)), SHAPES),
    "conv-gaussian": (dict(input_shape=(1, 32, 32), latent_dim=4, arch="conv", hidden_sizes=(48,),
                           likelihood="gaussian-learned"), SHAPES),
}
ODD_MODELS = {  # sides not divisible by 4 (conv pads and crops): name -> (model settings, the images' H x W)
    "conv-bernoulli-105x105": (dict(input_shape=(1, 105, 105), latent_dim=3, arch="conv", hidden_sizes=(16,)),
                               (105, 105)),
    "conv-gaussian-28x23": (dict(input_shape=(1, 28, 23), latent_dim=4, arch="conv", hidden_sizes=(24,),
                                 likelihood="gaussian"), (28, 23)),
    "mlp-bernoulli-23x28": (dict(input_shape=(1, 23, 28), latent_dim=3, hidden_sizes=(20,)), (23, 28)),
    "mlp-conv-bernoulli-23x28": (dict(input_shape=(1, 23, 28), latent_dim=3, arch="mlp-conv", hidden_sizes=(20,)),
                                 (23, 28)),
}
CANVAS_JS = """selector => {  // every RGBA value of a canvas
  const c = document.querySelector(selector);
  return {width: c.width, height: c.height, pixels: Array.from(c.getContext('2d').getImageData(0, 0, c.width,
    c.height).data)};
}"""

GRID_NOW_JS = """selector => {  // a grid's pixels with the page's z, once every tile shows that z (else null)
  const c = document.querySelector(selector);
  if (!c || !c.dataset.done) return null;
  return {z: window.__vaeExplore.z(), width: c.width, height: c.height,
          pixels: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)};
}"""


def bundled():
    return load_run(ROOT / "assets" / "runs" / "digits-default")


def canvas_image(page, selector: str, shape: tuple[int, int]) -> np.ndarray:
    """What a canvas shows, sampled at its cells' centres, as grey values in [0, 1]: (H, W)."""
    got = page.evaluate(CANVAS_JS, selector)
    h, w = shape
    rgba = np.asarray(got["pixels"], np.float32).reshape(got["height"], got["width"], 4)
    sy, sx = got["height"] / h, got["width"] / w
    centres = rgba[(np.arange(h) * sy + sy / 2).astype(int)][:, (np.arange(w) * sx + sx / 2).astype(int), 0]
    return centres / 255.0


def torch_decode(model, z) -> np.ndarray:
    with torch.no_grad():
        return model.decode_mean(torch.as_tensor(np.asarray(z, np.float32))).numpy()


def star(page) -> dict:
    return explore_api(page, "star")


def nearest_heading(page) -> str:
    """The line above the nearest images, which states z's norm and prior log-density."""
    return page.locator('[data-testid="stMarkdownContainer"]', has_text=re.compile(r"\|z\| = ")).first.inner_text()


def url_z(page) -> list[float]:
    return [float(v) for v in page.evaluate("() => new URLSearchParams(location.search).get('z')").split(",")]


# --------------------------------------------------------------------------- the runtime against torch

@pytest.mark.usefixtures("new_runs_removed")
def test_the_browser_decodes_and_encodes_like_torch(open_app, runs_dir, tmp_path):
    models = dict(MODELS)
    for name, (settings, side) in ODD_MODELS.items():  # odd-sized images, as a .npy file the run names
        np.save(tmp_path / f"{name}.npy", (np.random.default_rng(0).random((40, *side)) * 255).astype(np.uint8))
        models[name] = (settings, {"kind": FILES_KIND, "path": str(tmp_path / f"{name}.npy"), "name": name})
    for name, (settings, data) in models.items():
        config = ModelConfig(**settings)
        model = build_model(config, seed=1).eval()
        last = model.decoder.net[-1] if hasattr(model.decoder, "net") else model.decoder.deconv[-1]
        with torch.no_grad():  # outputs beyond [0, 1], so the Gaussian clamp is exercised
            last.bias.add_(torch.linspace(-2, 2, last.bias.numel()))
        path = save_run(runs_dir / f"zz-{name}", model, RunConfig(model=config, dataset=data))  # newest: active
        page = open_app()
        page.locator(live("panel")).wait_for(timeout=60_000)
        open_pad(page)  # the page sends the encoder's weights with the pad
        z = (torch.randn(6, config.latent_dim, generator=torch.Generator().manual_seed(7)) * 2).numpy()
        x = load_source({k: v for k, v in data.items() if k != "name"}).batch(np.arange(4))
        with torch.no_grad():
            mu, logvar = (t.numpy() for t in model.encode(torch.as_tensor(x)))
        for kernel in ("auto", "js"):
            decoded = explore_api(page, "decode", z.tolist(), kernel)
            assert decoded["kernel"] == ("wasm-simd" if kernel == "auto" else "js")
            images = np.asarray(decoded["images"]).reshape(len(z), *config.input_shape)
            np.testing.assert_allclose(images, torch_decode(model, z), atol=1e-4, err_msg=f"{name} {kernel}")
            encoded = explore_api(page, "encode", x.reshape(len(x), -1).tolist(), kernel)
            np.testing.assert_allclose(np.asarray(encoded["mu"]), mu, atol=1e-4, err_msg=f"{name} {kernel}")
            np.testing.assert_allclose(np.asarray(encoded["logvar"]), logvar, atol=1e-4, err_msg=f"{name} {kernel}")
        shutil.rmtree(path)


# --------------------------------------------------------------------------- the panel

def test_a_slider_drag_decodes_live_and_the_star_follows(app):
    app.locator(live("panel")).wait_for()
    app.locator(live("map")).wait_for()
    show_views(app)  # the nearest images, below the first screen
    slider = app.locator(f'{live("panel")} input.vx-slider').first
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    lo, hi, value, dim = slider.evaluate("e => [Number(e.min), Number(e.max), Number(e.value), Number(e.dataset.dim)]")
    x, y = box["x"] + box["width"] * (value - lo) / (hi - lo), box["y"] + box["height"] / 2
    heading = nearest_heading(app)
    panel = app.locator(live("panel"))

    app.mouse.move(x, y)
    app.mouse.down()
    seen = []
    for i in range(1, 8):
        app.mouse.move(x + 9 * i, y)
        next_frame(app)
        z = explore_api(app, "z")
        seen.append((int(panel.get_attribute("data-frames")), star(app)["data"], z,
                     canvas_image(app, f'{live("panel")} canvas.vx-canvas', (8, 8))))
    app.mouse.up()

    frames = [s[0] for s in seen]
    assert all(b > a for a, b in zip(frames, frames[1:])), f"a frame per movement: {frames}"
    assert len({tuple(np.round(s[1], 4)) for s in seen}) == len(seen), "the star moves while the button is down"
    model = bundled().model
    for _, _, z, shown in seen[-2:]:  # what the canvas shows is the torch decode of the browser's z (8-bit)
        np.testing.assert_allclose(shown, torch_decode(model, [z])[0, 0], atol=1.5 / 255)
    assert seen[-1][2][dim] > value
    pca = Projection("pca").fit(encode(model, load_digits())[1])
    np.testing.assert_allclose(seen[-1][1], pca.transform(np.asarray([seen[-1][2]]))[0], atol=1e-3)
    wait_until(lambda: panel.locator("canvas.vx-strip").get_attribute("data-done"), timeout=10, what="the traversal strip")
    # on release the final z goes back to Python: the server-side views follow it
    wait_until(lambda: nearest_heading(app) != heading, timeout=30, what="the nearest images to follow the released z")
    wait_until(lambda: np.allclose(url_z(app), seen[-1][2], atol=1e-3), timeout=30, what="the URL to hold the z")
    timing = explore_api(app, "timing")
    assert timing["decode"]["count"] >= 7 and timing["paint"]["median"] is not None


def test_a_server_slider_moves_the_image_and_the_star(app):
    app.locator(key("w_explore_decoder_mode")).get_by_text("Server", exact=True).click()
    wait_idle(app)
    server = app.locator(live("server"))
    drawn, star_before = server.get_attribute("data-drawn"), app.locator(live("map")).get_attribute("data-star")
    thumb = app.locator('[class*="st-key-w_z"] input[type="range"]').first  # by KL: the most informative first
    thumb.focus()
    thumb.press("End")
    wait_until(lambda: server.get_attribute("data-drawn") != drawn, timeout=30, what="a newly decoded image")
    wait_until(lambda: app.locator(live("map")).get_attribute("data-star") != star_before, timeout=10,
               what="the star to move")
    wait_idle(app)
    z = explore_api(app, "z")  # the server's z, relayed to the browser
    assert z == pytest.approx(url_z(app), abs=1e-3)
    shown = canvas_image(app, f'{live("server")} canvas', (8, 8))
    np.testing.assert_allclose(shown, torch_decode(bundled().model, [z])[0, 0], atol=1.5 / 255)


# --------------------------------------------------------------------------- the map

def test_hover_shows_the_image_and_its_reconstruction(app):
    app.locator(live("map")).wait_for()
    app.locator(live("map")).scroll_into_view_if_needed()
    row = 60
    point = explore_api(app, "pointOnScreen", row)
    app.mouse.move(point["x"] + 30, point["y"] + 30)
    app.mouse.move(point["x"], point["y"])
    tooltip = app.locator(".vx-tooltip")
    tooltip.wait_for()
    hovered = int(app.locator(live("map")).get_attribute("data-hover-row"))  # the point under the mouse
    assert f"#{hovered}" in tooltip.inner_text()
    # the original is drawn once its block of images has come (a "loading image…" note until then, and the
    # reconstruction would be the tooltip's only figure)
    wait_until(lambda: app.locator(live("map")).get_attribute("data-hover-image") == str(hovered), timeout=30,
               what="the hovered point's original image")
    digits, run = load_digits(), bundled()
    original = canvas_image(app, ".vx-tooltip figure:nth-of-type(1) canvas", (8, 8))
    recon = canvas_image(app, ".vx-tooltip figure:nth-of-type(2) canvas", (8, 8))
    np.testing.assert_allclose(original, digits.batch(np.array([hovered]))[0, 0], atol=1.5 / 255)
    mu = encode(run.model, digits)[1][hovered]
    np.testing.assert_allclose(recon, torch_decode(run.model, [mu])[0, 0], atol=1.5 / 255)
    assert explore_api(app, "timing")["hover"]["count"] >= 1


def test_a_click_goes_to_the_images_code_at_once(app):
    row = click_point(app, 412)
    mu = encode(bundled().model, load_digits())[1][row]
    np.testing.assert_allclose(explore_api(app, "z"), mu, atol=1e-5)  # before the server has answered
    sliders = app.locator(f'{live("panel")} input.vx-slider').evaluate_all(
        "es => es.map(e => [Number(e.dataset.dim), Number(e.value)])")
    for dim, value in sliders:
        assert value == pytest.approx(mu[dim], abs=1e-4)
    selected = app.locator('[data-testid="stMarkdownContainer"]', has_text="Selected: 1 image").first
    selected.wait_for()
    assert f"#{row}" in selected.inner_text()
    wait_until(lambda: url_z(app) and np.allclose(url_z(app), mu, atol=1e-3), timeout=30, what="the server's z")
    show_views(app)  # the whole page in the screenshot
    screenshot(app, ARTIFACTS / "screenshots" / "explore-selection.png")


def test_dragging_the_star_moves_z_in_the_pca_plane(app):
    app.locator(live("map")).wait_for()
    app.locator(live("map")).scroll_into_view_if_needed()
    z0, start = np.asarray(explore_api(app, "z")), star(app)
    target = explore_api(app, "dataToScreen", start["data"][0] + 0.8, start["data"][1] - 0.5)
    steps = [(start["x"] + (target["x"] - start["x"]) * t / 6, start["y"] + (target["y"] - start["y"]) * t / 6)
             for t in range(1, 7)]
    drag(app, (start["x"], start["y"]), steps)
    z1 = np.asarray(explore_api(app, "z"))
    np.testing.assert_allclose(star(app)["data"], [start["data"][0] + 0.8, start["data"][1] - 0.5], atol=0.02)
    pca = Projection("pca").fit(encode(bundled().model, load_digits())[1])
    moved = z1 - z0  # within the principal plane: nothing off it changed
    np.testing.assert_allclose(moved - pca.components_.T @ (pca.components_ @ moved), 0, atol=1e-4)
    wait_until(lambda: np.allclose(url_z(app), z1, atol=1e-3), timeout=30, what="the server to take the dropped z")


def test_a_box_selects_the_points_inside_and_the_server_shows_them(app):
    app.locator(live("map")).wait_for()
    app.locator(live("map")).scroll_into_view_if_needed()
    app.locator(".vx-toolbar button", has_text="Box").click()
    a, b = explore_api(app, "dataToScreen", -0.6, 0.6), explore_api(app, "dataToScreen", 0.2, -0.2)
    drag(app, (a["x"], a["y"]), [(b["x"], b["y"])])
    codes = encode(bundled().model, load_digits())[1]
    xy = Projection("pca").fit(codes).transform(codes)
    inside = int(((xy[:, 0] >= -0.6) & (xy[:, 0] <= 0.2) & (xy[:, 1] >= -0.2) & (xy[:, 1] <= 0.6)).sum())
    assert abs(int(app.locator(live("map")).get_attribute("data-selected")) - inside) <= 2  # pixel rounding
    app.locator('[data-testid="stMarkdownContainer"]', has_text=re.compile(r"Selected: \d+ images")).first.wait_for()
    text = app.locator('[data-testid="stMarkdownContainer"]', has_text="Selected: ").first.inner_text()
    assert abs(int(re.search(r"Selected: (\d+)", text).group(1)) - inside) <= 2


# --------------------------------------------------------------------------- the pad

def test_drawing_encodes_like_torch_and_use_as_z_moves_there(app):
    show_views(app)  # scrolled down to the pad: the page below it is drawn, so the pad can scroll fully into view
    app.get_by_text("Draw an image to encode it").click()
    pad = app.locator(f'{live("pad")} canvas.vx-pad')
    # the canvas shows before the model arrives and is resized for it then: a box read before that is stale, and a
    # stroke drawn through it landed elsewhere (once 0.96 ink at most) or before the pad could paint (never encoded)
    wait_until(lambda: app.locator(live("pad")).get_attribute("data-ready"), timeout=30,
               what="the pad sized for the model")
    pad.scroll_into_view_if_needed()
    box = pad.bounding_box()
    at = lambda fx, fy: (box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)  # noqa: E731
    drag(app, at(0.3, 0.15), [at(0.6, 0.15), at(0.55, 0.5), at(0.45, 0.85)])
    wait_until(lambda: app.locator(live("pad")).get_attribute("data-encoded"), timeout=10, what="the drawing encoded")
    drawn = explore_api(app, "pad")
    pixels = np.asarray(drawn["pixels"], np.float32).reshape(1, 1, 8, 8)
    assert pixels.max() == 1.0 and (pixels > 0).sum() >= 6, "the stroke left ink"
    model = bundled().model
    with torch.no_grad():
        mu = model.encode(torch.as_tensor(pixels))[0].numpy()[0]
    np.testing.assert_allclose(drawn["mu"], mu, atol=1e-4)
    np.testing.assert_allclose(canvas_image(app, f'{live("pad")} canvas.vx-canvas', (8, 8)),
                               torch_decode(model, [mu])[0, 0], atol=1.5 / 255)
    app.locator(f'{live("pad")} button', has_text="Use as z").click()
    np.testing.assert_allclose(explore_api(app, "z"), mu, atol=1e-5)
    wait_until(lambda: np.allclose(url_z(app), mu, atol=1e-3), timeout=30, what="the server to take the pad's z")


# --------------------------------------------------------------------------- the views below

def test_the_traversal_tab_is_decoded_in_the_browser_like_torch(app):
    show_views(app)
    grid = app.locator(f'{live("grid")} canvas.vx-grid')
    grid.wait_for()
    # the tiles and the z they show, read at one moment while every tile shows the page's z (data-done is there only
    # then): a z read apart from the pixels could be one the grid has not drawn yet
    got = wait_until(lambda: app.evaluate(GRID_NOW_JS, f'{live("grid")} canvas.vx-grid'), timeout=20,
                     what="every traversal tile decoded at the page's z")
    dims = [int(t.removeprefix("z")) for t in app.locator(f'{live("grid")} .vx-strip-label').all_inner_texts()]
    run, digits = bundled(), load_digits()
    _, mu, logvar = encode(run.model, digits)
    ranges = slider_ranges(aggregate_posterior_samples(mu, logvar, 5000, seed=0))  # as the page's latents
    z = got["z"]
    expected = torch_decode(run.model, traversal_grid(np.asarray(z, np.float32), dims, ranges, 9).reshape(-1, 8))
    rgba = np.asarray(got["pixels"], np.float32).reshape(got["height"], got["width"], 4)[..., 0] / 255
    tile = (got["width"] + 2) / 9 - 2  # tiles of tile x tile pixels, 2 apart; rows 3 pixels taller (z's tick)
    pitch, cell = got["height"] / len(dims), tile / 8
    for r in range(len(dims)):
        for c in range(9):
            ys = (r * pitch + (np.arange(8) + 0.5) * cell).astype(int)
            xs = (c * (tile + 2) + (np.arange(8) + 0.5) * cell).astype(int)
            np.testing.assert_allclose(rgba[np.ix_(ys, xs)], expected[r * 9 + c, 0], atol=1.5 / 255,
                                       err_msg=f"row z{dims[r]}, column {c}")
