"""Bring your own VAE (vae_core/imports/, python -m vae_core.import_onnx): the pytorch/examples MLP VAE and a conv
VAE, exported from torch here with torch.onnx.export, become runs whose encode and decode equal torch's (and the
browser's numpy reference, vae_core/export.py); hostile files (a huge declared tensor, external data, an unknown op,
a truncated file) get a clear error naming the file and nothing is written; an imported run is never trained."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto

from tests.onnx_models import ConvVAE, ExamplesVAE, PaddedVAE, export_vae, seeded
from vae_core import import_onnx as cli
from vae_core.config import TrainConfig
from vae_core.data import Dataset
from vae_core.export import export_model, reference_decode, reference_encode
from vae_core.imports.onnx_run import build_imported, import_onnx_uploads
from vae_core.jobs import TrainingJob
from vae_core.runs import load_run

MODELS = {"examples-mlp": (ExamplesVAE, 20), "conv": (ConvVAE, 6)}


def images(n: int = 5) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(3))


def codes(n: int, d: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(4)) * 2


def imported(tmp_path, name: str, dynamo: bool = False, likelihood: str = "bernoulli"):
    cls, latent = MODELS[name]
    torch_model = seeded(cls)
    enc, dec = export_vae(torch_model, tmp_path, latent, dynamo=dynamo)
    out = tmp_path / "run"
    assert cli.main(["--encoder", str(enc), "--decoder", str(dec), "--input-shape", "1,28,28",
                     "--likelihood", likelihood, "--out", str(out)]) == 0
    return torch_model, load_run(out), (enc, dec)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-exporter", "dynamo-exporter"])
@pytest.mark.parametrize("name", MODELS)
def test_an_imported_vae_encodes_and_decodes_like_torch(tmp_path, name, dynamo):
    torch_model, run, _ = imported(tmp_path, name, dynamo)
    x, z = images(), codes(7, MODELS[name][1])
    with torch.no_grad():
        want_mu, want_logvar = torch_model.encode(x)
        mu, logvar = run.model.encode(x)
        torch.testing.assert_close(mu, want_mu, rtol=0, atol=1e-5)
        torch.testing.assert_close(logvar, want_logvar, rtol=0, atol=1e-5)
        want = torch_model.decode(z).reshape(7, 1, 28, 28)  # the final Sigmoid's output: E[x|z]
        torch.testing.assert_close(run.model.decode_mean(z), want, rtol=0, atol=1e-5)
        torch.testing.assert_close(torch.sigmoid(run.model.decode(z)), want, rtol=0, atol=1e-5)  # logits
    browser = export_model(run.model)  # the programs the browser runs, through their numpy reference
    np.testing.assert_allclose(reference_decode(browser, z.numpy()), want.numpy(), atol=1e-5)
    ref_mu, ref_logvar = reference_encode(browser, x.numpy())
    np.testing.assert_allclose(ref_mu, want_mu.numpy(), atol=1e-5)
    np.testing.assert_allclose(ref_logvar, want_logvar.numpy(), atol=1e-5)


def test_padding_a_plain_matmul_and_a_split_become_layers_too(tmp_path):
    torch_model = seeded(PaddedVAE)
    enc, dec = export_vae(torch_model, tmp_path, 2)
    model, config, _ = build_imported(enc, dec, (1, 28, 28), "bernoulli")
    ops = lambda layers: [layer["op"] for layer in layers]  # noqa: E731
    assert ops(config.layers["encoder"]["body"]) == ["pad", "conv2d", "leaky_relu", "flatten"]
    assert ops(config.layers["decoder"]) == ["linear", "reshape"]  # no final Sigmoid: the output are the logits
    x, z = images(), codes(5, 2)
    with torch.no_grad():
        torch.testing.assert_close(model.encode(x), torch_model.encode(x), rtol=0, atol=1e-5)
        torch.testing.assert_close(model.decode(z), torch_model.decode(z), rtol=0, atol=1e-5)
    browser = export_model(model)
    np.testing.assert_allclose(reference_decode(browser, z.numpy()), torch.sigmoid(torch_model.decode(z)).detach(),
                               atol=1e-5)


def test_a_gaussian_decoder_keeps_its_sigmoid_as_the_mean(tmp_path):
    torch_model, run, _ = imported(tmp_path, "conv", likelihood="gaussian")
    z = codes(4, 6)
    with torch.no_grad():
        torch.testing.assert_close(run.model.decode(z), torch_model.decode(z), rtol=0, atol=1e-5)
    assert run.config.model.layers["decoder"][-1] == {"op": "sigmoid"}


def test_the_run_records_where_it_came_from(tmp_path):
    import hashlib
    _, run, (enc, dec) = imported(tmp_path, "examples-mlp")
    source = run.state["imported"]
    assert source["format"] == "onnx"
    for side, path in (("encoder", enc), ("decoder", dec)):
        assert source[side]["file"] == path.name
        assert source[side]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert run.config.model.arch == "onnx" and run.history == {"steps": [], "epochs": []}


def test_uploaded_files_become_a_new_run_named_after_the_encoder(tmp_path):
    torch_model = seeded(ExamplesVAE)
    enc, dec = export_vae(torch_model, tmp_path, 20)
    root = tmp_path / "runs"
    uploads = (("my enc.onnx", enc.read_bytes()), ("my dec.onnx", dec.read_bytes()))
    first = import_onnx_uploads(*uploads, (1, 28, 28), "bernoulli", root)
    second = import_onnx_uploads(*uploads, (1, 28, 28), "bernoulli", root)
    assert (first.name, second.name) == ("my-enc-onnx", "my-enc-onnx-2")
    run = load_run(first)
    assert run.state["imported"]["decoder"]["file"] == "my dec.onnx"
    with torch.no_grad():
        z = codes(3, 20)
        torch.testing.assert_close(run.model.decode_mean(z).flatten(1), torch_model.decode(z), rtol=0, atol=1e-5)
    broken = ("my dec.onnx", dec.read_bytes()[:1000])
    with pytest.raises(ValueError, match="^my dec.onnx: not a valid ONNX file"):
        import_onnx_uploads(uploads[0], broken, (1, 28, 28), "bernoulli", root)
    assert sorted(p.name for p in root.iterdir()) == ["my-enc-onnx", "my-enc-onnx-2"]  # no scratch left behind


def test_an_imported_run_is_never_trained(tmp_path):
    _, run, _ = imported(tmp_path, "examples-mlp")
    data = Dataset(np.random.default_rng(0).random((20, 1, 28, 28), dtype=np.float32), name="noise")
    with pytest.raises(ValueError, match="imported .* cannot be trained or continued here"):
        TrainingJob(data, run.config.model, TrainConfig(epochs=1), resume=run)


# --------------------------------------------------------------------------- hostile files


class _Softplus(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(20, 784)

    def forward(self, z):
        return F.softplus(self.fc(z))


def _rewrite(path, change) -> None:
    model = onnx.load(str(path), load_external_data=False)
    change(model)
    path.write_bytes(model.SerializeToString())


def _huge(model: onnx.ModelProto) -> None:
    weight = model.graph.initializer[0]
    weight.ClearField("dims")
    weight.dims.extend([100_000, 100_000])  # 10^10 floats declared; the file holds a few hundred thousand


def _external(model: onnx.ModelProto) -> None:
    weight = model.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value="../../../etc/passwd")


def _hostile(tmp_path, kind: str):
    enc, dec = export_vae(seeded(ExamplesVAE), tmp_path, 20)
    if kind == "huge":
        _rewrite(dec, _huge)
    elif kind == "external":
        _rewrite(dec, _external)
    elif kind == "unknown-op":
        torch.onnx.export(_Softplus(), (torch.randn(2, 20),), dec, dynamo=False, input_names=["z"])
    else:
        data = dec.read_bytes()
        dec.write_bytes(data[:len(data) // 2])
    return enc, dec


@pytest.mark.parametrize("kind,message", [
    ("huge", r"decoder.onnx: tensor .* declares 10,000,000,000 elements \(37.3 GB\), over this server's memory"),
    ("external", r"decoder.onnx: tensor .* keeps its data in an external file \('../../../etc/passwd'\)"),
    ("unknown-op", r"decoder.onnx: op Softplus at node .* is not supported"),
    ("truncated", r"decoder.onnx: not a valid ONNX file \(truncated or corrupt"),
])
def test_a_hostile_file_gets_a_clear_error_and_nothing_is_written(tmp_path, capsys, kind, message):
    enc, dec = _hostile(tmp_path, kind)
    with pytest.raises(ValueError, match=message):
        build_imported(enc, dec, (1, 28, 28), "bernoulli")
    out = tmp_path / "run"
    assert cli.main(["--encoder", str(enc), "--decoder", str(dec), "--input-shape", "1,28,28",
                     "--likelihood", "bernoulli", "--out", str(out)]) == 2
    assert "error: decoder.onnx" in capsys.readouterr().err
    assert not out.exists()


def test_a_file_cut_anywhere_is_refused_naming_it(tmp_path):
    enc, dec = export_vae(seeded(ExamplesVAE), tmp_path, 20)
    data = dec.read_bytes()
    for cut in np.linspace(1, len(data) - 1, 25).astype(int):
        dec.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="^decoder.onnx: "):
            build_imported(enc, dec, (1, 28, 28), "bernoulli")


def test_a_wrong_input_shape_is_refused(tmp_path):
    enc, dec = export_vae(seeded(ExamplesVAE), tmp_path, 20)
    with pytest.raises(ValueError, match=r"encoder.onnx: its input is declared \[None, 1, 28, 28\], not "
                                         r"\(B, 1, 32, 32\) or \(B, 1024\) \(check --input-shape\)"):
        build_imported(enc, dec, (1, 32, 32), "bernoulli")


# --------------------------------------------------------------------------- Explore, through AppTest


def test_every_explore_view_works_with_an_imported_conv_vae(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.test_explore_page import EXPLORE, ROOT, decoded_image, parts, server_mode
    from ui.explore.views import SHOWN as VIEWS_SHOWN, TABS
    torch_model = seeded(ConvVAE)
    enc, dec = export_vae(torch_model, tmp_path, 6)
    root = tmp_path / "runs"
    shapes = ["--data", "shapes", "--shapes-n", "300", "--shapes-size", "28"]
    assert cli.main(["--encoder", str(enc), "--decoder", str(dec), "--input-shape", "1,28,28",
                     "--likelihood", "bernoulli", "--out", str(root / "conv-onnx"), *shapes]) == 0
    monkeypatch.setenv("VAE_RUNS_DIR", str(root))
    monkeypatch.setenv("VAE_THREADS", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.session_state["active_run"] = str(root / "conv-onnx")
    at.session_state[VIEWS_SHOWN] = True
    at.session_state["explore_pad_open"] = True
    at.switch_page(EXPLORE).run()
    assert not at.exception, at.exception
    assert set(parts(at)) == {"panel", "map", "pad", "grid"}  # decoded and encoded in the browser, not on the server
    for tab in TABS:
        at.session_state["w_explore_tab"] = tab
        at.run()
        assert not at.exception, (tab, at.exception)
    server_mode(at)  # the server's own decode of the panel's z is torch's (8-bit image)
    z = np.asarray(parts(at)["server"][0]["z"], np.float32)
    with torch.no_grad():
        want = torch_model.decode(torch.as_tensor(z[None]))[0].numpy()
    np.testing.assert_allclose(decoded_image(at) / 255.0, want, atol=1 / 255 + 1e-6)


def test_a_tampered_layer_list_in_config_json_is_refused_on_load(tmp_path):
    import json
    _, run, _ = imported(tmp_path, "examples-mlp")
    path = run.path / "config.json"
    raw = json.loads(path.read_text())
    for change, message in (
            (lambda m: m["layers"]["encoder"]["body"][1].update({"in": 5}),
             r"encoder body layer 1: a linear layer of 5 inputs gets \(784,\)"),
            (lambda m: m["layers"]["decoder"].insert(0, {"op": "softplus"}), r"decoder layer 0: a layer must be"),
            (lambda m: m["layers"]["decoder"][0].update({"out": 10**12}), r"out must be an integer from 1"),
            (lambda m: m.update({"arch": "mlp"}), r"arch='mlp' takes no layer list")):
        model = json.loads(json.dumps(raw["model"]))
        change(model)
        path.write_text(json.dumps(raw | {"model": model}))
        with pytest.raises(ValueError, match=message):
            load_run(run.path)


class _Decoder(torch.nn.Module):
    """z (B, 4) -> (B, 1, 8, 8) through a layer the engine refuses."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind, self.fc = kind, torch.nn.Linear(4, 2 * 8 * 8)
        self.conv = torch.nn.Conv2d(2, 2, 3, padding=2, dilation=2, groups=1 if kind == "dilation" else 2)

    def forward(self, z):
        h = self.fc(z)
        if self.kind == "skip":
            return (h + torch.relu(h)).view(-1, 2, 8, 8)[:, :1]
        return self.conv(h.view(-1, 2, 8, 8))[:, :1]


@pytest.mark.parametrize("kind,message", [
    ("skip", r"decoder.onnx: op Add at node .* combines two computed tensors \(a skip connection\?\)"),
    ("dilation", r"decoder.onnx: op Conv at node .* uses groups, dilation or auto_pad; not supported"),
    ("groups", r"decoder.onnx: op Conv at node .* uses groups, dilation or auto_pad; not supported"),
])
def test_layers_the_engine_cannot_run_are_refused_by_name(tmp_path, kind, message):
    small = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 8))  # an encoder of one 8-value output
    enc, dec = tmp_path / "encoder.onnx", tmp_path / "decoder.onnx"
    torch.onnx.export(small, (torch.rand(2, 1, 8, 8),), enc, dynamo=False, input_names=["x"])
    torch.onnx.export(_Decoder(kind), (torch.randn(2, 4),), dec, dynamo=False, input_names=["z"])
    with pytest.raises(ValueError, match=message):
        build_imported(enc, dec, (1, 8, 8), "bernoulli")
