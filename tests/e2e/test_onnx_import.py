"""Bring your own VAE in a real browser: the pytorch/examples MLP VAE and a conv VAE, exported from torch by the
test and imported with `python -m vae_core.import_onnx`, decode and encode in the browser like torch (both kernels);
a small VAE uploaded on the Runs page's ONNX form becomes a run that Explore decodes like torch, and Train says it is
not trained further."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from harness.browser import explore_api, goto, key, live, open_pad
from tests.e2e.test_runs import ALERT, activate
from tests.onnx_models import ConvVAE, ExamplesVAE, export_vae, seeded
from vae_core import import_onnx as cli
from vae_core.data import load_digits

pytestmark = pytest.mark.e2e

MODELS = {"examples-mlp": (ExamplesVAE, 20), "conv": (ConvVAE, 6)}
ATOL = 1e-5


def _compare_in_browser(page, torch_model, z: np.ndarray, x: np.ndarray, what: str) -> None:
    """The browser's decode and encode (both kernels) against the torch model the ONNX files came from."""
    open_pad(page)  # the page sends the encoder's weights with the pad
    with torch.no_grad():
        want = torch_model.decode(torch.as_tensor(z)).reshape(len(z), -1).numpy()
        mu, logvar = (t.numpy() for t in torch_model.encode(torch.as_tensor(x)))
    for kernel in ("auto", "js"):
        decoded = explore_api(page, "decode", z.tolist(), kernel)
        np.testing.assert_allclose(np.asarray(decoded["images"]).reshape(len(z), -1), want, atol=ATOL,
                                   err_msg=f"{what} decode {kernel}")
        encoded = explore_api(page, "encode", x.reshape(len(x), -1).tolist(), kernel)
        np.testing.assert_allclose(np.asarray(encoded["mu"]), mu, atol=ATOL, err_msg=f"{what} mu {kernel}")
        np.testing.assert_allclose(np.asarray(encoded["logvar"]), logvar, atol=ATOL, err_msg=f"{what} logvar {kernel}")


@pytest.mark.usefixtures("new_runs_removed")
def test_imported_onnx_vaes_decode_and_encode_in_the_browser_like_torch(open_app, runs_dir, tmp_path):
    images = (np.random.default_rng(0).random((40, 28, 28)) * 255).astype(np.uint8)
    np.save(tmp_path / "images.npy", images)
    for name, (cls, latent) in MODELS.items():
        torch_model = seeded(cls)
        folder = tmp_path / name
        folder.mkdir()
        enc, dec = export_vae(torch_model, folder, latent)
        out = runs_dir / f"zz-onnx-{name}"  # the newest run: the new session's active model
        assert cli.main(["--encoder", str(enc), "--decoder", str(dec), "--input-shape", "1,28,28",
                         "--likelihood", "bernoulli", "--data", str(tmp_path / "images.npy"), "--out", str(out)]) == 0
        page = open_app()
        page.locator(live("panel")).wait_for(timeout=60_000)
        z = (torch.randn(6, latent, generator=torch.Generator().manual_seed(7)) * 2).numpy()
        x = images[:4, None].astype(np.float32) / 255
        _compare_in_browser(page, torch_model, z, x, name)
        shutil.rmtree(out)


class SmallVAE(nn.Module):
    """A 64-32-4 MLP VAE for the 8x8 digits (the app's default data), Sigmoid decoder."""

    def __init__(self):
        super().__init__()
        self.fc1, self.mu, self.logvar = nn.Linear(64, 32), nn.Linear(32, 4), nn.Linear(32, 4)
        self.fc3, self.fc4 = nn.Linear(4, 32), nn.Linear(32, 64)

    def encode(self, x):
        h = torch.relu(self.fc1(x.view(-1, 64)))
        return self.mu(h), self.logvar(h)

    def decode(self, z):
        return torch.sigmoid(self.fc4(torch.relu(self.fc3(z))))


def test_the_runs_page_imports_onnx_files_that_explore_runs_and_train_refuses(app, tmp_path, runs_dir,
                                                                            new_runs_removed):
    torch_model = seeded(SmallVAE)
    enc, dec = export_vae(torch_model, tmp_path, 4, shape=(1, 8, 8))
    goto(app, "Runs")
    app.get_by_text("Import a VAE from ONNX").click()
    app.locator(f"{key('runs_onnx_encoder')} input[type=file]").set_input_files(str(enc))
    app.locator(f"{key('runs_onnx_decoder')} input[type=file]").set_input_files(str(dec))
    for side in ("height", "width"):
        app.locator(f"{key('runs_onnx_' + side)} input").fill("8")
    app.locator(f"{key('runs_onnx_import')} button").first.click()  # the help tooltip wraps it in a second one
    imported = app.locator(ALERT, has_text="Imported as")
    imported.wait_for(timeout=60_000)
    name = re.search(r"Imported as (\S+)", imported.inner_text()).group(1)
    assert name == "encoder-onnx" and (runs_dir / name / "model.safetensors").exists()

    activate(app, name, f"{name} · onnx · 4-D latent")

    goto(app, "Explore")
    app.locator(live("panel")).wait_for(timeout=60_000)
    z = (torch.randn(5, 4, generator=torch.Generator().manual_seed(8)) * 2).numpy()
    _compare_in_browser(app, torch_model, z, load_digits().batch(np.arange(4)), "uploaded")

    goto(app, "Train")
    refusal = app.locator(ALERT, has_text="cannot be trained or continued here")
    refusal.wait_for(timeout=30_000)
    assert name in refusal.inner_text()
