"""Memory budgets before the work (vae_core/runs/budget.py): a run zip of a few kilobytes whose config claims a
100,000-D latent space or a 700,000-unit hidden layer is refused at import, by Explore (the page says why and stays
usable) and by `python -m vae_core.evaluate` (one line, a non-zero exit, no traceback) before anything is encoded;
the price bounds the memory the work really takes, measured in a fresh interpreter."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from ui.explore.views import SHOWN as VIEWS_SHOWN
from vae_core.config import ModelConfig, RunConfig
from vae_core.model import VAE
from vae_core.runs import import_zip, list_runs, load_run, save_run
from vae_core.runs.budget import BUDGET_ENV, DEFAULT_BUDGET_BYTES, memory_budget, price, widest_layer
from vae_core.runs.checks import model_skeleton

ROOT = Path(__file__).resolve().parent.parent
DIGITS = {"kind": "digits", "name": "digits"}
HOSTILE = {  # consistent runs for the 8×8 digits whose weights are small and whose work is not
    "latent-100k": ModelConfig(input_shape=(1, 8, 8), latent_dim=100_000, hidden_sizes=(1,)),
    "hidden-700k": ModelConfig(input_shape=(1, 8, 8), latent_dim=2, hidden_sizes=(1, 700_000, 1)),
}


def zeroed_run(folder: Path, config: ModelConfig) -> Path:
    """A valid run folder whose weights are all zeros (they compress to almost nothing in a zip)."""
    model = VAE(config)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    return save_run(folder, model, RunConfig(model=config, dataset=DIGITS))


def zip_folder(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, f"{folder.name}/{path.name}")
    return buf.getvalue()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, bytes]:
    """Each hostile run as the zip an attacker uploads."""
    root = tmp_path_factory.mktemp("hostile")
    return {name: zip_folder(zeroed_run(root / name, config)) for name, config in HOSTILE.items()}


def unzip(data: bytes, root: Path) -> Path:
    """The zip's run folder copied into root as it is (the way a run trained elsewhere is copied in)."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        zf.extractall(root)
    return root / Path(zf.namelist()[0]).parent


def test_the_hostile_runs_are_small_consistent_and_pass_the_weights_check(hostile, tmp_path):
    for name, data in hostile.items():
        assert len(data) < 64 * 2**10, (name, len(data))  # the "20 KB run zip"
        run = load_run(unzip(data, tmp_path), with_optimizer=True)  # every check of checks.py passes
        assert run.config.model == HOSTILE[name]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_run_zip_is_refused_at_import_with_the_budget_named(hostile, tmp_path, name):
    with pytest.raises(ValueError, match=f"over this server's budget of 2.0 GB per run \\({BUDGET_ENV}\\)") as info:
        import_zip(hostile[name], tmp_path / "runs", zip_name=f"{name}.zip")
    assert str(info.value).startswith(f"{name}.zip: encoding one batch of images with this run would need about ")
    assert list_runs(tmp_path / "runs") == [] and os.listdir(tmp_path / "runs") == []  # nothing left behind


def test_the_budget_comes_from_the_environment(hostile, tmp_path, monkeypatch):
    assert memory_budget() == DEFAULT_BUDGET_BYTES == 2 * 2**30
    monkeypatch.setenv(BUDGET_ENV, "1e12")  # an operator with the memory for it
    path = import_zip(hostile["latent-100k"], tmp_path / "runs")
    assert load_run(path).config.model.latent_dim == 100_000
    for bad in ("lots", "-1", "0"):
        monkeypatch.setenv(BUDGET_ENV, bad)
        with pytest.raises(ValueError, match=f"{BUDGET_ENV} must be a positive number of bytes"):
            memory_budget()


def test_ordinary_runs_are_far_under_the_budget():
    """The bundled digits model explored on all 1,797 digits, and a conv model on 60,000 28×28 images."""
    bundled = load_run(ROOT / "assets" / "runs" / "digits-default").config.model
    assert price(bundled, 1797, extra_rows=5000, export=True).total < 64 * 2**20
    conv = ModelConfig(input_shape=(1, 28, 28), latent_dim=32, hidden_sizes=(256,), arch="conv")
    assert price(conv, 60_000, extra_rows=5000, export=True).total < DEFAULT_BUDGET_BYTES / 4


def meta_forward_widest(model: torch.nn.Module, config: ModelConfig) -> int:
    """The trusted reference: a forward pass of one image and one z on the meta device, every leaf layer's input,
    output and (for a convolution) unfolded patches counted by a hook, as torch itself runs them."""
    sizes = [config.input_size + config.latent_dim]

    def record(module, inputs, output) -> None:
        x, y = inputs[0], output
        unfolded = 0
        if isinstance(module, torch.nn.ConvTranspose2d):
            unfolded = module.out_channels * module.weight[0, 0].numel() * x[0, 0].numel()
        elif isinstance(module, torch.nn.Conv2d):
            unfolded = module.weight[0].numel() * y[0, 0].numel()
        sizes.append(x[0].numel() + y[0].numel() + unfolded)

    hooks = [m.register_forward_hook(record) for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        model.encode(torch.empty((1, *config.input_shape), device="meta"))
        model.decode(torch.empty((1, config.latent_dim), device="meta"))
    for hook in hooks:
        hook.remove()
    return max(sizes)


LISTED = {  # an imported network's layer lists (vae_core/layers.py): every op the budget follows
    "encoder": {"body": [{"op": "pad", "sides": [1, 1, 0, 1]},
                         {"op": "conv2d", "in_ch": 3, "out_ch": 8, "kernel": 3, "stride": 2, "padding": 1},
                         {"op": "leaky_relu", "slope": 0.2}, {"op": "flatten"},
                         {"op": "linear", "in": 8 * 7 * 9, "out": 40}, {"op": "tanh"}],
                "mu": [{"op": "linear", "in": 40, "out": 4}], "logvar": [{"op": "linear", "in": 40, "out": 4}]},
    "decoder": [{"op": "linear", "in": 4, "out": 16 * 3 * 4}, {"op": "relu"}, {"op": "reshape", "shape": [16, 3, 4]},
                {"op": "conv_transpose2d", "in_ch": 16, "out_ch": 3, "kernel": 4, "stride": 4, "padding": 0,
                 "output_padding": 0}, {"op": "pad", "sides": [0, 0, 0, 0]}, {"op": "sigmoid"}],
}


@pytest.mark.parametrize("config", [
    ModelConfig(input_shape=(1, 8, 8), latent_dim=8, hidden_sizes=(256,)),
    ModelConfig(input_shape=(3, 23, 28), latent_dim=5, hidden_sizes=(64, 32), arch="mlp"),
    ModelConfig(input_shape=(1, 28, 28), latent_dim=32, hidden_sizes=(256,), arch="conv"),
    ModelConfig(input_shape=(1, 105, 105), latent_dim=16, hidden_sizes=(128,), arch="conv"),
    ModelConfig(input_shape=(3, 64, 64), latent_dim=32, hidden_sizes=(512,), arch="conv"),
    ModelConfig(input_shape=(3, 23, 28), latent_dim=4, hidden_sizes=(64,), arch="mlp-conv"),
    ModelConfig(input_shape=(3, 12, 16), latent_dim=4, hidden_sizes=(64,), arch="onnx", layers=LISTED),
    *HOSTILE.values(),
], ids=lambda c: f"{c.arch}-{'x'.join(map(str, c.input_shape))}-z{c.latent_dim}")
def test_the_widest_layer_is_what_a_forward_pass_on_the_meta_device_counts(config):
    """The shapes followed layer by layer (no tensor made, no torch._dynamo import) give the forward pass's numbers
    for every architecture, odd image sides (padding, cropping) and an imported layer list."""
    model = model_skeleton(config)
    assert widest_layer(model, config) == meta_forward_widest(model, config)


def test_the_budget_is_priced_without_importing_torch_dynamo():
    """The meta device's forward pass imported torch._dynamo (about a second per server process, before Explore's
    first screen); the shapes followed by hand do not."""
    code = ("import sys; from vae_core.config import ModelConfig; from vae_core.runs.budget import price; "
            "price(ModelConfig(input_shape=(1, 28, 28), arch='conv'), 20_000, extra_rows=5000, export=True); "
            "print('torch._dynamo' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


# ----------------------------------------------------------------------------- Explore


@pytest.mark.parametrize("name", HOSTILE)
def test_explore_refuses_a_hostile_run_before_encoding_and_stays_usable(hostile, tmp_path, monkeypatch, name):
    runs = tmp_path / "runs"
    path = unzip(hostile[name], runs)  # copied into the runs folder: no import check on this way in
    monkeypatch.setenv("VAE_RUNS_DIR", str(runs))
    monkeypatch.setenv("VAE_THREADS", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["active_run"] = str(path)
    at.switch_page("pages/explore.py").run()
    assert not at.exception, at.exception
    shown = " ".join(i.value for i in at.info)
    assert f"Exploring {name} on 1,797 images would need about" in shown, shown
    assert f"over this server's budget of 2.0 GB per run ({BUDGET_ENV})" in shown
    at.switch_page("pages/runs.py").run()  # the server and the session carry on
    assert not at.exception and name in " ".join(str(e.value) for e in at.main if hasattr(e, "value"))


def test_compare_refuses_a_second_model_over_the_budget_and_keeps_the_page(hostile, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    mine = zeroed_run(runs / "digits-2d", ModelConfig(input_shape=(1, 8, 8), latent_dim=2, hidden_sizes=(32,)))
    unzip(hostile["hidden-700k"], runs)  # also 2-D on 8×8 images: a candidate for Compare
    monkeypatch.setenv("VAE_RUNS_DIR", str(runs))
    monkeypatch.setenv("VAE_THREADS", "1")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["active_run"] = str(mine)
    at.session_state[VIEWS_SHOWN] = True  # scrolled down to the views
    at.session_state["w_explore_tab"] = "Compare"
    at.switch_page("pages/explore.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="w_explore_compare_run").value == "hidden-700k"
    shown = " ".join(w.value for w in at.warning)
    assert "Exploring hidden-700k on 1,797 images would need about" in shown and f"({BUDGET_ENV})" in shown
    assert "1,797 images encoded in" in " ".join(c.value for c in at.caption)  # the active model's page is all there


# ----------------------------------------------------------------------------- python -m vae_core.evaluate


@pytest.mark.parametrize("name", ["hidden-700k", "latent-10M"])
def test_evaluate_refuses_a_hostile_run_in_one_line_with_a_nonzero_exit(hostile, tmp_path, name):
    if name in hostile:
        path = unzip(hostile[name], tmp_path)
    else:  # the latent-10⁷ run: 200 MB of weights, under the 2 GiB weights check
        path = zeroed_run(tmp_path / name, ModelConfig(input_shape=(1, 8, 8), latent_dim=10**7, hidden_sizes=(1,)))
    done = subprocess.run([sys.executable, "-m", "vae_core.evaluate", str(path), "--data", "digits", "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == "", done
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"error: evaluating {name} on ") and "would need about" in lines[0]
    assert f"({BUDGET_ENV})" in lines[0]


# ----------------------------------------------------------------------------- the price against the real peak

MEASURE = """
import json, sys
import torch
from vae_core.config import ModelConfig
from vae_core.data import load_source
from vae_core.model import VAE
from ui.explore.data import explore_cost
from vae_core.latent import (aggregate_posterior_samples, dims_by_kl, encode, kl_per_image, reconstruction_error,
                             slider_ranges)
torch.set_num_threads(1)
config = ModelConfig(**json.loads(sys.argv[1]))
dataset = load_source(sys.argv[2])
model = VAE(config).eval()
def high_water() -> int:  # this process's own peak RSS (VmHWM). Not ru_maxrss: it keeps the peak of the process
    # that forked us across exec, so under a long pytest run (a large parent) it read 0 growth
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
open("/proc/self/clear_refs", "w").write("5")  # the peak starts again from what is resident now
before = high_water()
_, mu, logvar = encode(model, dataset)  # what ui/explore/data.py's _latents computes
kl, recon, dims = kl_per_image(mu, logvar), reconstruction_error(model, dataset, mu), dims_by_kl(mu, logvar)
ranges = slider_ranges(aggregate_posterior_samples(mu, logvar, 5000, seed=0))
peak = high_water() - before
cost = explore_cost(config, dataset.n)
print(json.dumps({"peak": peak, "priced": cost.total - cost.weights - cost.export}))
"""


@pytest.mark.slow  # each case encodes the dataset into hundreds of MB, in its own interpreter
@pytest.mark.parametrize("model, data", [
    ({"latent_dim": 8000, "hidden_sizes": [16]}, "digits"),  # wide codes: N × latent
    ({"latent_dim": 8, "hidden_sizes": [80_000]}, "digits"),  # a wide layer: batch × hidden
    ({"input_shape": [1, 32, 32], "latent_dim": 500, "hidden_sizes": [64], "arch": "conv"}, "shapes"),  # unfolds
])
def test_the_price_bounds_the_memory_explore_really_takes(model, data):
    model = {"input_shape": [1, 8, 8], **model}
    done = subprocess.run([sys.executable, "-c", MEASURE, json.dumps(model), data], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout)
    assert measured["peak"] > 150 * 2**20  # the work is large enough for the comparison to mean something
    assert measured["peak"] <= measured["priced"] <= 2.5 * measured["peak"], measured
