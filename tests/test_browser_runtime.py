"""The browser's network runtime (ui/explore/live/gemm.js + network.js), run by Node on exported models, against
the torch model: both of its kernels (WebAssembly SIMD and plain JS), MLP and conv, Bernoulli and Gaussian, decode
and encode. tests/e2e/test_explore.py checks the same in Chromium, on the page."""
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_export import CONFIGS, model_for
from vae_core.export import export_model

DRIVER = Path(__file__).parent / "js" / "runtime_driver.mjs"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed (the browser tests cover the runtime)")


def run_in_node(model, z: np.ndarray, x: np.ndarray, kernel: str, folder: Path, sent: str = "whole") -> tuple:
    exported = export_model(model)
    (folder / "spec.json").write_text(json.dumps(exported.spec))
    (folder / "blob.bin").write_bytes(exported.blob)
    (folder / "z.bin").write_bytes(z.astype("<f4").tobytes())
    (folder / "x.bin").write_bytes(x.astype("<f4").tobytes())
    done = subprocess.run([NODE, str(DRIVER), str(folder), kernel, sent], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    read = lambda name, shape: np.frombuffer((folder / name).read_bytes(), "<f4").reshape(shape)  # noqa: E731
    d = model.config.latent_dim
    return (json.loads(done.stdout), read("decoded.bin", (len(z), *model.config.input_shape)),
            read("mu.bin", (len(x), d)), read("logvar.bin", (len(x), d)))


@pytest.mark.parametrize("kernel", ["auto", "js"])
@pytest.mark.parametrize("name", CONFIGS)
def test_the_runtime_decodes_and_encodes_like_torch(name, kernel, tmp_path):
    model = model_for(name)
    z = (torch.randn(9, model.config.latent_dim, generator=torch.Generator().manual_seed(3)) * 2).numpy()
    x = torch.rand(3, *model.config.input_shape, generator=torch.Generator().manual_seed(4)).numpy()
    report, images, mu, logvar = run_in_node(model, z, x, kernel, tmp_path)
    assert report["kernel"] == ("wasm-simd" if kernel == "auto" else "js")
    with torch.no_grad():
        np.testing.assert_allclose(images, model.decode_mean(torch.as_tensor(z)).numpy(), atol=1e-5)
        want_mu, want_logvar = model.encode(torch.as_tensor(x))
    np.testing.assert_allclose(mu, want_mu.numpy(), atol=1e-5)
    np.testing.assert_allclose(logvar, want_logvar.numpy(), atol=1e-5)


@pytest.mark.parametrize("name", CONFIGS)
def test_a_model_sent_as_its_decoder_then_its_encoder_runs_like_torch(name, tmp_path):
    """As the page sends a model: the decoder's floats first (the sliders decode with them alone), the encoder's part
    with the drawing pad; an encode before it has come fails saying so, never with garbage from missing weights."""
    model = model_for(name)
    z = (torch.randn(5, model.config.latent_dim, generator=torch.Generator().manual_seed(5)) * 2).numpy()
    x = torch.rand(2, *model.config.input_shape, generator=torch.Generator().manual_seed(6)).numpy()
    report, images, mu, logvar = run_in_node(model, z, x, "auto", tmp_path, sent="split")
    assert "encoder has not been sent" in report["early"]
    exported = export_model(model)
    assert 0 < exported.spec["decoder_floats"] < exported.spec["n_floats"]
    with torch.no_grad():
        np.testing.assert_allclose(images, model.decode_mean(torch.as_tensor(z)).numpy(), atol=1e-5)
        want_mu, want_logvar = model.encode(torch.as_tensor(x))
    np.testing.assert_allclose(mu, want_mu.numpy(), atol=1e-5)
    np.testing.assert_allclose(logvar, want_logvar.numpy(), atol=1e-5)


def test_the_runtime_refuses_an_output_op_it_does_not_know(tmp_path):
    """A decoder ending in an op the runtime lacks fails loudly instead of drawing clamped pixels."""
    exported = export_model(model_for("mlp-bernoulli"))
    (tmp_path / "spec.json").write_text(json.dumps(exported.spec | {"output": "softplus"}))
    (tmp_path / "blob.bin").write_bytes(exported.blob)
    for name in ("z.bin", "x.bin"):
        (tmp_path / name).write_bytes(b"")
    done = subprocess.run([NODE, str(DRIVER), str(tmp_path), "js"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "unknown output op softplus" in done.stderr
