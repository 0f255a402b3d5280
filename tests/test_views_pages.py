"""The views beyond the basics, as a user drives them through AppTest: KL per dimension over time on Train; the
downloads of Explore (traversals, interpolation, samples) and Train (reconstructions per epoch) decoded back and
compared with torch; posterior uncertainty (the Posterior tab's samples and table, the map's ellipses); attribute
vectors (the slider's direction, factor alignment and MIG); two models compared at one z."""
from __future__ import annotations

import base64
import json

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence
from streamlit.runtime.media_file_manager import MediaFileManager

from tests.test_app_pages import app, start_training  # noqa: F401  (the AppTest factory fixture)
from tests.test_explore_page import ROOT, explore, parts, runs  # noqa: F401  (fixtures: Explore on seeded runs)
from vae_core.attributes import attribute_vector, factor_alignment
from vae_core.data import load_digits, load_source
from vae_core.metrics import mig
from vae_core.latent import dims_by_kl, encode, lerp, prior_samples, slerp
from vae_core.media import STRIP_PX, epoch_reconstructions
from vae_core.projections import Projection
from vae_core.runs import load_run
from vae_core.kl_history import kl_over_time


def array(value) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array {dtype, bdata (base64), shape}."""
    if isinstance(value, dict):
        shape = [int(n) for n in str(value.get("shape", "-1")).split(",")]
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"]).reshape(shape)
    return np.asarray(value)


@pytest.mark.parametrize("run", ["2d", "8d", "32d", "conv"])
def test_the_new_tabs_render_for_every_kind_of_model(explore, run):  # noqa: F811
    at = explore(run)
    at.session_state["explore_selection"] = [3]
    for tab in ("Posterior", "Attributes", "Compare"):
        at.session_state["w_explore_tab"] = tab
        at.run()
        assert not at.exception, (run, tab, at.exception)
    assert len(parts(at)["map"][0]["ellipses"]) == 1  # the default map (latent axes for 2-D, PCA otherwise)


def heatmap(at) -> dict:
    """The KL-per-dimension heatmap trace as the browser receives it (x and z as arrays)."""
    traces = [t for chart in at.get("plotly_chart") for t in json.loads(chart.proto.spec)["data"]]
    trace = next(t for t in traces if t.get("type") == "heatmap")
    return trace | {"x": array(trace["x"]), "z": array(trace["z"])}


def test_train_shows_kl_per_dimension_over_steps_and_epochs(app):  # noqa: F811
    at = app("pages/train.py")
    job = start_training(at, tf_epochs=2, tf_latent=3)
    assert job.join(timeout=60) and job.state == "finished"
    at.run()
    assert not at.exception
    history = job.history()
    by_step = heatmap(at)
    reference = kl_over_time(history["steps"], history["epochs"], "step")
    assert by_step["y"] == ["z0", "z1", "z2"]
    np.testing.assert_allclose(by_step["z"], reference.kl)
    assert by_step["x"][-1] == history["steps"][-1]["step"]

    at.segmented_control(key="chart_x").set_value("epoch").run()
    by_epoch = heatmap(at)
    np.testing.assert_array_equal(by_epoch["x"], [1, 2])
    np.testing.assert_allclose(by_epoch["z"], np.array([e["val_kl_per_dim"] for e in history["epochs"]]).T)


@pytest.fixture
def downloads(monkeypatch) -> dict:
    """The deferred download callables the page registered, by widget key (what a click on the button runs)."""
    found = {}
    original = MediaFileManager.add_deferred

    def record(self, data_callable, mimetype, coordinates, file_name=None, *, element_id=""):
        found[element_id.rsplit("-", 1)[-1]] = (data_callable, file_name, mimetype)
        return original(self, data_callable, mimetype, coordinates, file_name=file_name, element_id=element_id)

    monkeypatch.setattr(MediaFileManager, "add_deferred", record)
    return found


def frames(data: bytes) -> list[np.ndarray]:
    """A PNG's pixels or every frame of a GIF, as (H, W, 3) uint8."""
    return [np.array(f.convert("RGB")) for f in ImageSequence.Iterator(Image.open(io.BytesIO(data)))]


def torch_tiles(model, z: np.ndarray) -> np.ndarray:
    """The reference: torch's decoder mean at each z, 8-bit, upscaled x7 as the 56-pixel tiles: (N, 56, 56)."""
    with torch.no_grad():
        images = model.decode_mean(torch.as_tensor(np.asarray(z, np.float32))).numpy()[:, 0]
    pixels = (np.clip(images, 0, 1) * 255).round().astype(np.uint8)
    return pixels.repeat(7, 1).repeat(7, 2)


def tile(picture: np.ndarray, row: int, col: int, size: int = 56, pad: int = 2) -> np.ndarray:
    return picture[row * (size + pad): row * (size + pad) + size, col * (size + pad): col * (size + pad) + size, 0]


def test_explore_downloads_hold_the_decoders_images(explore, runs, downloads):  # noqa: F811
    """Traversals at the page's z as PNG (rows = dimensions) and GIF (2S-2 frames), the interpolation paths, and
    the prior samples: each file decoded back equals torch's decoder at the z the page shows."""
    at = explore("8d")
    model = load_run(runs["8d"]).model
    view = parts(at)["grid"][0]
    z, spec = np.array(view["z"], np.float32), view["grid"]
    steps, dims = spec["steps"], spec["dims"]
    paths = np.repeat(z[None, None], len(dims), 0).repeat(steps, 1)
    for row, axis in enumerate(dims):
        paths[row, :, axis["index"]] = np.linspace(axis["lo"], axis["hi"], steps)

    make, name, mime = downloads["explore_dl_traverse_png"]
    assert mime == "image/png" and name.endswith(".png")
    (png,) = frames(make())
    assert png.shape[:2] == (len(dims) * 58 - 2, steps * 58 - 2)
    for row in range(len(dims)):
        expected = torch_tiles(model, paths[row])
        for col in range(steps):
            np.testing.assert_array_equal(tile(png, row, col), expected[col])

    gif = frames(downloads["explore_dl_traverse_gif"][0]())
    assert len(gif) == 2 * steps - 2 and gif[0].shape[:2] == (56 + STRIP_PX, len(dims) * 58 - 2)
    for frame, t in zip(gif, list(range(steps)) + list(range(steps - 2, 0, -1))):
        expected = torch_tiles(model, paths[:, t])
        for row in range(len(dims)):
            np.testing.assert_array_equal(tile(frame, 0, row), expected[row])

    at.session_state["w_explore_tab"] = "Manifold"
    at.run()
    assert not at.exception
    spec = parts(at)["grid"][0]["grid"]
    assert spec["kind"] == "manifold"
    (png,) = frames(downloads["explore_dl_manifold_png"][0]())
    s, x, y = spec["steps"], spec["x"], spec["y"]
    assert png.shape[:2] == (s * 33 - 1, s * 33 - 1)  # 8x8 images x4: 32-pixel tiles, 1 apart
    corner = z.copy()
    corner[x["index"]], corner[y["index"]] = x["hi"], y["lo"]  # the bottom-right tile: high x, low y
    with torch.no_grad():
        image = model.decode_mean(torch.as_tensor(corner[None])).numpy()[0, 0]
    start = (s - 1) * 33
    np.testing.assert_array_equal(png[start:start + 32:4, start:start + 32:4, 0],
                                  (np.clip(image, 0, 1) * 255).round().astype(np.uint8))

    at.session_state["w_explore_tab"] = "Interpolation"
    at.run()
    assert not at.exception
    a, b, n = at.session_state["explore_interp_a"], at.session_state["explore_interp_b"], 8
    mu = encode(model, load_digits().batch(np.array([a, b])))[1]
    both = np.stack([lerp(mu[0], mu[1], n), slerp(mu[0], mu[1], n)])
    (png,) = frames(downloads["explore_dl_interp_png"][0]())
    gif = frames(downloads["explore_dl_interp_gif"][0]())
    assert png.shape[:2] == (2 * 58 - 2, n * 58 - 2) and len(gif) == 2 * n - 2
    for row in range(2):
        expected = torch_tiles(model, both[row])
        for col in range(n):
            np.testing.assert_array_equal(tile(png, row, col), expected[col], err_msg=f"path {row}, frame {col}")
        np.testing.assert_array_equal(tile(gif[3], 0, row), expected[3])

    at.session_state["w_explore_tab"] = "Sampling"
    at.run()
    assert not at.exception
    (png,) = frames(downloads["explore_dl_prior_png"][0]())
    expected = torch_tiles(model, prior_samples(36, 8, 1.0, seed=0))
    side = 6 * 58 - 2
    assert png.shape[:2] == (side, side) and "explore_dl_posterior_png" in downloads
    np.testing.assert_array_equal(tile(png, 5, 5), expected[35])


def test_train_downloads_the_runs_reconstructions_per_epoch(app, downloads):  # noqa: F811
    at = app("pages/train.py")
    job = start_training(at, tf_epochs=3, tf_latent=3)
    assert job.join(timeout=60) and job.state == "finished"
    at.run()
    assert not at.exception
    make, name, mime = downloads["train_dl_recon_gif"]
    assert mime == "image/gif" and name.endswith("-reconstructions.gif")
    gif = frames(make())
    kept, images = epoch_reconstructions(job.history()["epochs"], (1, 8, 8))
    assert kept == [1, 2, 3] and len(gif) == 3
    originals = job.dataset.batch(job.val_idx[:8])
    for frame, epoch in zip(gif, images):
        for col in range(8):
            recon = (epoch[col, 0] * 255).round().astype(np.uint8).repeat(7, 0).repeat(7, 1)
            np.testing.assert_array_equal(tile(frame, 1, col), recon)
            original = (originals[col, 0] * 255).round().astype(np.uint8).repeat(7, 0).repeat(7, 1)
            np.testing.assert_array_equal(tile(frame, 0, col), original)


def posterior_table(at):
    """The Posterior tab's table of this image's mu, sigma and KL per dimension."""
    return next(d.value for d in at.dataframe if "σ" in d.value.columns)


def test_a_selected_images_posterior_samples_and_its_ellipse_on_the_map(explore, runs, downloads):  # noqa: F811
    at = explore("8d")
    model, digits = load_run(runs["8d"]).model, load_digits()
    at.session_state["explore_selection"] = [5, 40]
    at.session_state["w_explore_tab"] = "Posterior"
    at.run()
    assert not at.exception

    _, mu, logvar = encode(model, digits)
    a = Projection("pca").fit(mu).components_.astype(np.float64)  # the page's default map: PCA of every code
    ellipses = parts(at)["map"][0]["ellipses"]
    assert [e["row"] for e in ellipses] == [5, 40]
    for e in ellipses:
        ring = np.array(e["points"]).reshape(-1, 2)
        cov = a @ np.diag(np.exp(logvar[e["row"]])) @ a.T
        offsets = ring - ring.mean(0)
        np.testing.assert_allclose(np.einsum("pi,ij,pj->p", offsets, np.linalg.inv(cov), offsets), 4.0, rtol=1e-3)
        np.testing.assert_allclose(ring.mean(0), a @ (mu[e["row"]] - mu.mean(0)), atol=1e-4)  # around A (mu - mean)

    table = posterior_table(at)
    sigma = np.exp(0.5 * logvar[5])
    dims = [int(d.removeprefix("z")) for d in table["dimension"]]
    np.testing.assert_allclose(table["μ"], mu[5, dims], atol=1e-5)
    np.testing.assert_allclose(table["σ"], sigma[dims], rtol=1e-5)
    gen = torch.Generator().manual_seed(0)
    z = torch.from_numpy(mu[5]) + torch.from_numpy(sigma) * torch.randn((16, 8), generator=gen)
    (png,) = frames(downloads["explore_dl_posterior_samples_png"][0]())
    expected = torch_tiles(model, z.numpy())
    assert png.shape[:2] == (2 * 58 - 2, 8 * 58 - 2)
    for i in (0, 7, 15):
        np.testing.assert_array_equal(tile(png, i // 8, i % 8), expected[i])

    at.session_state["explore_selection"] = []
    at.run()
    at.number_input(key="w_explore_post_row").set_value(40).run()
    assert not at.exception and parts(at)["map"][0]["ellipses"] == []
    np.testing.assert_allclose(posterior_table(at)["μ"], mu[40, dims], atol=1e-5)


def test_attributes_send_the_browser_the_mean_code_difference(explore, runs):  # noqa: F811
    at = explore("8d")
    at.session_state["w_explore_tab"] = "Attributes"
    at.run()
    at.selectbox(key="w_explore_attr_a").set_value("3").run()
    at.selectbox(key="w_explore_attr_b").set_value("8").run()
    assert not at.exception
    view = parts(at)["attribute"][0]
    digits = load_digits()
    mu = encode(load_run(runs["8d"]).model, digits)[1]
    reference = attribute_vector(mu, digits.labels == 3, digits.labels == 8).direction
    np.testing.assert_allclose(view["attribute"]["direction"], reference, rtol=1e-5, atol=1e-6)
    assert (view["attribute"]["from"], view["attribute"]["to"]) == ("3", "8")


def test_shapes_factors_against_the_latent_axes_beside_mig(explore, runs):  # noqa: F811
    at = explore("conv")
    at.session_state["w_explore_tab"] = "Attributes"
    at.run()
    at.selectbox(key="w_explore_attr").set_value("factor: scale").run()
    assert not at.exception
    assert at.selectbox(key="w_explore_attr_a").options[0].startswith("low third")
    run = load_run(runs["conv"])
    shapes = load_source(run.config.data_source)
    mu = encode(run.model, shapes)[1]
    labels, cos = factor_alignment(mu, shapes.factors, list(shapes.factor_names), {0: list(shapes.class_names)})
    chart = next(json.loads(c.proto.spec)["data"][0] for c in at.get("plotly_chart")
                 if json.loads(c.proto.spec)["data"][0].get("type") == "heatmap")
    assert chart["y"] == labels and labels[:4] == ["shape: square", "shape: ellipse", "shape: triangle", "shape: heart"]
    np.testing.assert_allclose(array(chart["z"]), cos, atol=1e-6)
    assert next(m.value for m in at.metric if m.label == "MIG") == f"{mig(mu, shapes.factors):.3f}"


def test_a_model_kept_on_the_server_moves_along_the_vector_there(explore, monkeypatch):  # noqa: F811
    monkeypatch.setattr("ui.explore.attributes.model_asset", lambda run: (None, "kept on the server"))
    at = explore("8d")
    at.session_state["w_explore_tab"] = "Attributes"
    at.run()
    at.slider(key="w_explore_attr_alpha").set_value(1.0).run()
    assert not at.exception and "attribute" not in parts(at)
    assert any("z + 1.00·v" in c for image in at.image for c in image.captions)


def test_compare_puts_a_second_model_of_the_same_latent_size_beside_the_first(explore, runs):  # noqa: F811
    at = explore("8d")
    at.session_state["w_explore_tab"] = "Compare"
    at.run()
    assert not at.exception
    other = at.selectbox(key="w_explore_compare_run")
    assert other.options == ["digits-default"]  # the bundled 8-D digits model; the 2-D and 32-D runs do not fit
    view, assets = parts(at)["compare"]
    assert view["names"] == ["digits-8d (β = 1)", "digits-default (β = 1)"]
    assert {a.kind for a in assets.values()} >= {"model"} and view["assets"]["other"] != view["assets"]["model"]
    digits = load_digits()
    bars = next(json.loads(c.proto.spec)["data"] for c in at.get("plotly_chart")
                if json.loads(c.proto.spec)["data"][0].get("type") == "bar")
    for trace, path in zip(bars, (runs["8d"], ROOT / "assets" / "runs" / "digits-default")):
        _, mu, logvar = encode(load_run(path).model, digits)
        np.testing.assert_allclose(array(trace["y"]), dims_by_kl(mu, logvar).kl, rtol=1e-5)

    at = explore("32d")
    at.session_state["w_explore_tab"] = "Compare"
    at.run()
    assert not at.exception and "No other run has a 32-D latent space" in " ".join(i.value for i in at.info)


def test_a_run_without_kept_reconstructions_says_why(app):  # noqa: F811
    at = app("pages/train.py")  # the bundled run: trained before runs kept reconstructions per epoch
    assert not at.exception and "train_dl_recon_gif" not in [b.key for b in at.get("download_button")]
    assert "this run was trained before runs kept them" in " ".join(c.value for c in at.caption)
