"""The command lines: `python -m vae_core.train` writes loadable runs from digits, shapes and an IDX file;
`python -m vae_core.evaluate` prints sensible JSON; bad input gives a one-line error and a non-zero exit."""
from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vae_core import evaluate as evaluate_cli
from vae_core import train as train_cli
from vae_core.runs import load_run

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--latent-dim", "3", "--hidden", "32", "--threads", "1", "--quiet"]


def run_module(*args: str) -> subprocess.CompletedProcess:
    """python -m ARGS in a fresh interpreter, from the repository root."""
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file from the format: two zero bytes, type 0x08, ndim, big-endian uint32 sizes, data."""
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def assert_one_line_error(stderr: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """A run written by the real command line, in its own interpreter."""
    out = tmp_path_factory.mktemp("cli") / "digits-run"
    done = run_module("vae_core.train", "--data", "digits", "--epochs", "2", "--out", str(out), *TINY)
    assert done.returncode == 0, done.stderr
    assert "saved" in done.stdout and "validation -ELBO" in done.stdout
    return out


def test_train_on_digits_writes_a_loadable_run(digits_run):
    run = load_run(digits_run, with_optimizer=True)
    assert run.config.model.input_shape == (1, 8, 8) and run.config.model.latent_dim == 3
    assert run.config.dataset["kind"] == "digits"
    assert [e["epoch"] for e in run.history["epochs"]] == [1, 2]
    assert run.state["finished"] is True and run.optimizer_tensors is not None
    assert run.metrics["device"] == "cpu"  # --device auto on a machine without an accelerator


PROGRESS = re.compile(r"epoch (\d+)/(\d+) step (\d+)/(\d+) +(\d+) img/s ETA +(\d+)s")


def test_training_shows_progress_with_samples_per_second_and_eta(tmp_path, capsys):
    # the bar the command line redraws on stderr; its last drawing is the finished job's
    argv = ["--data", "digits", "--epochs", "2", "--out", str(tmp_path / "run"), *TINY[:-1]]  # not --quiet
    assert train_cli.main(argv) == 0
    bars = PROGRESS.findall(capsys.readouterr().err)
    assert bars, "no progress bar on stderr"
    epoch, epochs, step, steps, rate, eta = map(int, bars[-1])
    assert (epoch, epochs) == (2, 2) and step == steps == 2 * 7  # 1617 training images at the default batch 256
    assert rate > 0 and eta == 0


def test_evaluate_prints_json_with_consistent_bounds(digits_run):
    done = run_module("vae_core.evaluate", str(digits_run), "--data", "digits", "--iwae-k", "5", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert {"elbo", "reconstruction", "kl", "iwae", "active_units", "n"} <= set(result)
    assert result["n"] == 180  # the run's own validation split: 10% of 1797 digits
    assert result["kl"] >= 0 and 0 <= result["active_units"] <= 3
    assert result["elbo"] == pytest.approx(-(result["reconstruction"] + result["kl"]), abs=1e-9)
    assert result["iwae"] >= result["elbo"] - 0.5  # L_5 >= ELBO up to Monte Carlo noise over 180 images
    assert result["elbo"] < 0 < result["reconstruction"]


def test_train_on_shapes_then_evaluate_reports_mig(tmp_path, capsys):
    out = tmp_path / "shapes-run"
    code = train_cli.main(["--data", "shapes", "--shapes-n", "300", "--epochs", "1", "--out", str(out), *TINY])
    assert code == 0, capsys.readouterr().err
    run = load_run(out)
    assert run.config.model.input_shape == (1, 32, 32) and run.config.dataset["n"] == 300
    capsys.readouterr()
    assert evaluate_cli.main([str(out), "--data", "shapes", "--iwae-k", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 30 and 0.0 <= result["mig"] <= 1.0


def test_train_on_an_idx_file_finds_its_labels_and_resumes(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = (rng.random((40, 28, 28)) > 0.7).astype(np.uint8) * 255
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(rng.integers(0, 10, 40).astype(np.uint8)))
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(images))
    out = tmp_path / "idx-run"
    assert train_cli.main(["--data", str(path), "--epochs", "1", "--batch-size", "16", "--out", str(out), *TINY]) == 0
    run = load_run(out)
    assert run.config.model.input_shape == (1, 28, 28) and run.config.dataset["path"] == str(path)
    assert run.config.dataset.get("labels_path", "").endswith("train-labels-idx1-ubyte")
    # --resume without --data trains on the run's own recorded data and continues its step count
    assert train_cli.main(["--resume", str(out), "--epochs", "2", "--batch-size", "16", "--out", str(out), *TINY]) == 0
    resumed = load_run(out)
    assert [e["epoch"] for e in resumed.history["epochs"]] == [1, 2]
    assert resumed.state["step"] == 2 * run.state["step"]
    capsys.readouterr()
    assert evaluate_cli.main([str(out), "--data", str(path), "--iwae-k", "0", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 40 and result["iwae"] is None


@pytest.mark.parametrize("side", [(105, 105), (23, 28)])
def test_conv_trains_on_any_image_size_and_decodes_the_image_shape(tmp_path, capsys, side):
    """105x105 (the handwritten characters) and 23x28 (the faces, H x W): padded to sides divisible by 4 inside the
    network, cropped back, so the run decodes images of the data's own shape."""
    images = (np.random.default_rng(2).random((24, *side)) * 255).astype(np.uint8)
    np.save(tmp_path / "odd.npy", images)
    out = tmp_path / "conv-run"
    code = train_cli.main(["--data", str(tmp_path / "odd.npy"), "--arch", "conv", "--epochs", "1", "--batch-size",
                           "8", "--out", str(out), *TINY])
    assert code == 0, capsys.readouterr().err
    run = load_run(out)
    assert run.config.model.input_shape == (1, *side)
    with torch.no_grad():
        assert run.model.decode_mean(torch.zeros(2, 3)).shape == (2, 1, *side)


def test_train_on_everything_then_evaluate_on_a_held_out_file(tmp_path, capsys):
    """--val-fraction 0: every image trains, no validation rows; evaluate --data FILE is the held-out measure."""
    rng = np.random.default_rng(1)
    train_images = (rng.random((60, 28, 28)) > 0.7).astype(np.uint8) * 255
    held_out_images = (rng.random((25, 28, 28)) > 0.7).astype(np.uint8) * 255
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(train_images))
    (tmp_path / "test-images-idx3-ubyte").write_bytes(idx_bytes(held_out_images))
    out = tmp_path / "all-run"
    argv = ["--data", str(tmp_path / "train-images-idx3-ubyte"), "--val-fraction", "0", "--epochs", "2",
            "--batch-size", "16", "--out", str(out), *TINY]
    assert train_cli.main(argv) == 0, capsys.readouterr().err
    said = capsys.readouterr().out
    assert "no validation split" in said and f"python -m vae_core.evaluate {out} --data FILE" in said
    run = load_run(out)
    assert run.state["step"] == 2 * 4  # all 60 images in batches of 16, twice
    assert [e["val_images"] for e in run.history["epochs"]] == [0, 0] and run.metrics["val_neg_elbo"] is None
    assert evaluate_cli.main([str(out), "--data", str(tmp_path / "test-images-idx3-ubyte"), "--iwae-k", "3",
                              "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 25 and result["elbo"] < 0 and result["iwae"] >= result["elbo"] - 1.0
    # the run has no split of its own to fall back on: a clear error, not an empty evaluation
    assert evaluate_cli.main([str(out), "--data", "digits", "--json"]) == 2
    assert "without a validation split" in capsys.readouterr().err


@pytest.mark.slow  # a third interpreter start; the in-process cases below check the same messages
def test_bad_input_exits_nonzero_with_one_line_and_no_traceback(tmp_path):
    done = run_module("vae_core.evaluate", str(tmp_path / "missing"), "--json")
    assert done.returncode != 0 and done.stdout == ""
    assert_one_line_error(done.stderr)


@pytest.mark.parametrize("argv, needle", [
    (["--data", "{tmp}/garbage.bin", "--epochs", "1"], "garbage.bin"),
    (["--data", "{tmp}/nowhere.npy", "--epochs", "1"], "nowhere.npy"),
    (["--data", "digits", "--epochs", "0"], "epochs"),
    (["--data", "{tmp}/tiny.npy", "--arch", "conv"], "at least 8x8, got 6x9"),
    (["--data", "digits", "--lr", "-1"], "lr"),
    (["--data", "digits", "--hidden", "0"], "hidden"),
    (["--resume", "{tmp}/model.pt"], "pickle"),
    (["--data", "digits", "--device", "tpu"], "unknown device"),
    (["--data", "digits", "--hidden", "a,b"], "--hidden"),
])
def test_train_bad_input(tmp_path, capsys, argv, needle):
    (tmp_path / "garbage.bin").write_bytes(b"\x01\x02not an image file at all")
    (tmp_path / "model.pt").write_bytes(b"\x80\x04not really a pickle")
    np.save(tmp_path / "tiny.npy", np.zeros((20, 6, 9), np.uint8))  # under conv's smallest side
    argv = ["--out", str(tmp_path / "out"), *TINY] + [a.replace("{tmp}", str(tmp_path)) for a in argv]  # argv wins
    assert train_cli.main(argv) != 0
    err = capsys.readouterr().err
    assert_one_line_error(err)
    assert needle in err
    assert not (tmp_path / "out").exists()  # nothing half-written


@pytest.mark.parametrize("argv, needle", [
    (["{tmp}/model.pt"], "pickle"),
    (["{run}", "--data", "{tmp}/garbage.bin"], "garbage.bin"),
    (["{run}", "--data", "shapes"], "expects"),  # a digits model cannot score 32x32 shapes
    (["{run}", "--iwae-k", "-3"], "iwae-k"),
])
def test_evaluate_bad_input(tmp_path, capsys, digits_run, argv, needle):
    (tmp_path / "garbage.bin").write_bytes(b"\x01\x02not an image file at all")
    (tmp_path / "model.pt").write_bytes(b"\x80\x04not really a pickle")
    np.save(tmp_path / "tiny.npy", np.zeros((20, 6, 9), np.uint8))  # under conv's smallest side
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{run}", str(digits_run)) for a in argv]
    assert evaluate_cli.main(argv + ["--json"]) != 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert_one_line_error(captured.err)
    assert needle in captured.err


def test_without_latent_dim_the_size_follows_the_images(tmp_path, capsys):
    """8 dimensions for the 8×8 digits, 12 for 28×28 images (the default that reached the pytorch/examples recipe's
    quality in half its time, bench/bench_quality.py); --latent-dim still wins."""
    images = (np.random.default_rng(0).random((40, 28, 28)) > 0.7).astype(np.uint8) * 255
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(images))
    small = ["--epochs", "1", "--batch-size", "16", "--hidden", "16", "--quiet"]
    for data, out, expected in (("digits", "d", 8), (str(path), "m", 12)):
        assert train_cli.main(["--data", data, "--out", str(tmp_path / out), *small]) == 0
        assert load_run(tmp_path / out).config.model.latent_dim == expected
    assert train_cli.main(["--data", str(path), "--latent-dim", "5", "--out", str(tmp_path / "m5"), *small]) == 0
    assert load_run(tmp_path / "m5").config.model.latent_dim == 5


def test_the_data_flags_come_from_the_sources_table(tmp_path, capsys):
    """--data takes each source of the table by name (with a --SOURCE-OPTION flag per option) or a PATH of any of its
    file kinds, and the source it names loads through load_source: the CLI and the Data page read one table."""
    from vae_core.data import FILE_KINDS, SOURCES, load_source, source_words

    assert source_words() == [name for name, s in SOURCES.items() if not s.reads_files] and "digits" in source_words()
    for name in source_words():
        options = SOURCES[name].options
        flags = [a for o in options for a in (f"--{name}-{o.name}", str(o.low))]
        args = train_cli.parse_args(["--data", name, *flags, "--out", str(tmp_path / "out")])
        source = train_cli.data_source(args)
        assert source == {"kind": name, **{o.name: o.low for o in options}}
        assert load_source(source).source == source
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((3, 4, 4), np.uint8)))
    args = train_cli.parse_args(["--data", str(path), "--labels", "y", "--out", str(tmp_path / "out")])
    assert train_cli.data_source(args) == {"kind": "path", "path": str(path), "labels_path": "y"}
    with pytest.raises(SystemExit):
        train_cli.parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for word in [*source_words(), *(k.label for k in FILE_KINDS)]:
        assert word in help_text, word


def test_the_cli_says_what_it_inferred_and_takes_the_file_options(tmp_path, capsys):
    """Before training the CLI prints N images, C×H×W and K classes with a few names, the loader's note and a resize
    hint; --resize and --class-levels (the sources table's file options) reach the loader and the run's data."""
    import io
    import zipfile

    from PIL import Image

    path = tmp_path / "nested.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i, folder in enumerate(["A/x", "A/y", "B/x", "B/y"] * 2):
            png = io.BytesIO()
            Image.fromarray(np.random.default_rng(i).integers(0, 256, (70, 105), dtype=np.uint8)).save(png, "PNG")
            zf.writestr(f"{folder}/{i}.png", png.getvalue())
        zf.writestr("../escape.png", png.getvalue())
    small = ["--epochs", "1", "--batch-size", "4", "--hidden", "8", "--latent-dim", "2", "--threads", "1"]
    assert train_cli.main(["--data", str(path), *small, "--out", str(tmp_path / "full")]) == 0
    err = capsys.readouterr().err
    assert "data: nested.zip: 8 images, 1×70×105, 4 classes (A/x, A/y, B/x, B/y)" in err  # not 2 merged x, y
    assert "note: skipped 1 of 9 entries: 1 outside the archive ('..', an absolute path or a link)" in err
    assert "hint: the images are 70×105 pixels; --resize 64 loads them at 64 on the longer side" in err

    flags = ["--resize", "64", "--class-levels", "1"]
    assert train_cli.main(["--data", str(path), *flags, *small, "--out", str(tmp_path / "resized")]) == 0
    err = capsys.readouterr().err
    assert "data: nested.zip: 8 images, 1×43×64, 2 classes (A, B)" in err and "hint:" not in err
    run = load_run(tmp_path / "resized")
    assert run.config.model.input_shape == (1, 43, 64)
    assert (run.config.dataset["resize"], run.config.dataset["class_levels"]) == (64, 1)

    assert train_cli.main(["--data", "digits", "--resize", "64", *small, "--out", str(tmp_path / "d")]) == 2
    assert_one_line_error(err := capsys.readouterr().err)
    assert "--resize is only used with --data PATH, not --data digits" in err


def test_evaluate_reads_a_file_as_the_run_was_trained_and_the_run_keeps_its_data(tmp_path, capsys):
    """evaluate --data PATH takes the file options (--resize, --class-levels) and, without them, the run's own: a run
    trained on images resized on load is evaluated at that size. The CLI's run keeps a copy of the file's images
    (vae_core/runs/kept_data.py) and says so."""
    import io
    import zipfile

    from PIL import Image

    from vae_core.runs.kept_data import KEPT_KEY, load_dataset

    path = tmp_path / "big.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(8):
            png = io.BytesIO()
            Image.fromarray(np.random.default_rng(i).integers(0, 256, (70, 105), dtype=np.uint8)).save(png, "PNG")
            zf.writestr(f"{'AB'[i % 2]}/{i}.png", png.getvalue())
    small = ["--epochs", "1", "--batch-size", "4", "--hidden", "8", "--latent-dim", "2", "--threads", "1"]
    out = tmp_path / "runs" / "resized"
    assert train_cli.main(["--data", str(path), "--resize", "32", *small, "--out", str(out)]) == 0
    assert "data: training data kept with the run: " in capsys.readouterr().err
    run = load_run(out)
    assert run.config.model.input_shape == (1, 21, 32)
    assert load_dataset(run.config.data_source, out.parent).shape == (1, 21, 32)

    assert evaluate_cli.main([str(out), "--data", str(path), "--iwae-k", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 8  # read at the run's 32 pixels, as trained
    assert evaluate_cli.main([str(out), "--data", str(path), "--resize", "0", "--iwae-k", "0", "--json"]) == 2
    assert "images are (1, 70, 105), the model expects (1, 21, 32)" in capsys.readouterr().err  # the flag wins
    assert evaluate_cli.main([str(out), "--data", str(path), "--resize", "32", "--iwae-k", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 8
    assert KEPT_KEY in run.config.dataset


def test_settings_left_out_come_from_the_recipe_and_the_cli_prints_them(tmp_path, capsys):
    """Every setting not given on the command line is the data's recipe (vae_core/recipe.py), printed as one 'auto: ...'
    line of flags; given flags win and are not printed; with every flag given nothing is auto."""
    from vae_core.recipe import recipe_for

    recipe = recipe_for((1, 8, 8), 1797, 0.1)  # the bundled digits
    given = ["--data", "digits", "--epochs", "1", "--hidden", "16", "--threads", "1", "--quiet"]
    assert train_cli.main([*given, "--out", str(tmp_path / "auto")]) == 0
    auto = [line for line in capsys.readouterr().out.splitlines() if line.startswith("auto: ")]
    assert len(auto) == 1 and f"--batch-size {recipe.batch_size} " in auto[0] and f"--lr {recipe.lr:g} " in auto[0]
    assert "--epochs" not in auto[0] and "--hidden" not in auto[0] and recipe.why[:-1] in auto[0]
    config = load_run(tmp_path / "auto").config
    assert (config.train.batch_size, config.train.lr, config.train.lr_schedule, config.train.lr_warmup_steps,
            config.train.output_bias, config.model.latent_dim, config.model.arch) == (
        recipe.batch_size, recipe.lr, recipe.lr_schedule, recipe.lr_warmup_steps, recipe.output_bias, recipe.latent_dim,
        recipe.arch)
    assert config.train.epochs == 1 and config.model.hidden_sizes == (16,)
    every = ["--arch", "mlp", "--latent-dim", "3", "--batch-size", "64", "--lr", "1e-3", "--lr-schedule", "constant",
             "--lr-warmup-steps", "0", "--output-bias", "torch", "--adam-beta2", "0.95"]
    assert train_cli.main([*given, *every, "--out", str(tmp_path / "given")]) == 0
    assert "auto:" not in capsys.readouterr().out
    config = load_run(tmp_path / "given").config
    assert (config.train.batch_size, config.train.lr, config.train.lr_schedule, config.train.lr_warmup_steps,
            config.train.output_bias, config.train.adam_beta2, config.model.latent_dim) == (64, 1e-3, "constant", 0,
                                                                                            "torch", 0.95, 3)


def test_a_chosen_architecture_gets_its_own_settings_from_the_recipe(tmp_path, capsys):
    """--arch mlp-conv with the batch and rate left out: the recipe for that architecture (its table entry's batch
    64, lr 5e-3 and Adam beta2 0.99, vae_core/architectures.py) fills them, and the auto line says so."""
    from vae_core.recipe import recipe_for

    recipe = recipe_for((1, 8, 8), 1797, 0.1, arch="mlp-conv")
    assert (recipe.batch_size, recipe.lr, recipe.adam_beta2) == (64, 5e-3, 0.99)
    args = ["--data", "digits", "--arch", "mlp-conv", "--epochs", "1", "--hidden", "16", "--threads", "1", "--quiet"]
    assert train_cli.main([*args, "--out", str(tmp_path / "conv")]) == 0
    auto = [line for line in capsys.readouterr().out.splitlines() if line.startswith("auto: ")]
    assert len(auto) == 1 and "--batch-size 64 " in auto[0] and "--lr 0.005 " in auto[0] and "--arch" not in auto[0]
    assert "--adam-beta2 0.99" in auto[0]
    assert "mlp-conv trains at its own batch 64, lr 0.005, epochs 11, Adam β₂ 0.99" in auto[0]
    config = load_run(tmp_path / "conv").config
    assert (config.model.arch, config.train.batch_size, config.train.lr, config.train.adam_beta2) == (
        "mlp-conv", 64, 5e-3, 0.99)
