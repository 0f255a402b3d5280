"""A run's kept copy of its training data (vae_core/runs/kept_data.py): named by its SHA-256, the uploaded pixels
exactly, shared by two runs on the same data and removed with the last of them, not kept over the cap (the run says
why), carried by the run's zip, and refused, naming the file, when it was changed."""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save as st_save

from vae_core.config import ModelConfig, RunConfig, TrainConfig
from vae_core.data import load_source
from vae_core.model import VAE
from vae_core.runs import delete_run, export_zip, import_zip, load_run, save_run
from vae_core.runs.kept_data import (FOLDER, KEPT_KEY, NOTE_KEY, keep, kept_path, load_dataset, load_kept,
                                     release)

IMAGES = np.random.default_rng(0).integers(0, 256, (30, 12, 12), dtype=np.uint8)
LABELS = np.arange(30) % 3


@pytest.fixture
def upload(tmp_path) -> dict:
    """An uploaded .npz (30 12×12 uint8 images, 3 classes) as its source dict."""
    path = tmp_path / "uploads" / "mine.npz"
    path.parent.mkdir()
    np.savez(path, x=IMAGES, y=LABELS)
    return {"kind": "path", "path": str(path)}


def save_on(root: Path, name: str, source: dict) -> Path:
    """A tiny run in root whose config.json names source (what a job saves)."""
    model = ModelConfig(input_shape=(1, 12, 12), latent_dim=2, hidden_sizes=(8,))
    return save_run(root / name, VAE(model), RunConfig(model, TrainConfig(), {**source, "name": "mine"}))


def test_the_copy_is_named_by_its_hash_and_holds_the_uploaded_pixels(upload, tmp_path):
    root = tmp_path / "runs"
    dataset = keep(load_source(upload), root)
    digest = dataset.source[KEPT_KEY]
    path = kept_path(root, digest)
    assert path.parent == root / FOLDER and hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert path.stat().st_size < IMAGES.nbytes + 2048  # uint8, as uploaded: not 4 bytes a pixel
    Path(upload["path"]).unlink()  # the upload is gone (pruned, another session's, a restarted server)
    kept = load_dataset(dataset.source, root)
    np.testing.assert_array_equal(kept.batch(np.arange(30)), IMAGES[:, None] / np.float32(255))
    np.testing.assert_array_equal(kept.labels, LABELS)
    assert kept.class_names == ["0", "1", "2"] and kept.name == "mine.npz" and kept.source == dataset.source


def test_float_images_that_are_not_whole_levels_are_kept_exactly(tmp_path):
    path = tmp_path / "floats.npy"
    np.save(path, np.random.default_rng(1).random((5, 1, 6, 6), dtype=np.float32))
    dataset = load_source(str(path))
    kept = load_dataset(keep(dataset, tmp_path / "runs").source, tmp_path / "runs")
    assert kept.images.dtype == np.float32
    np.testing.assert_array_equal(kept.batch(np.arange(5)), dataset.batch(np.arange(5)))


def test_bundled_and_generated_data_need_no_copy(tmp_path):
    for source in ("digits", {"kind": "shapes", "n": 100, "size": 16, "seed": 0}):
        dataset = load_source(source)
        assert keep(dataset, tmp_path) is dataset
    assert not (tmp_path / FOLDER).exists()


def test_over_the_cap_nothing_is_kept_and_the_run_says_why(upload, tmp_path, monkeypatch):
    dataset = load_source(upload)
    small = keep(dataset, tmp_path, cap=IMAGES.nbytes // 2)
    assert KEPT_KEY not in small.source and "over the 0 MB a run keeps (VAE_KEEP_DATA_BYTES)" in small.source[NOTE_KEY]
    monkeypatch.setenv("VAE_KEEP_DATA_BYTES", "0")  # the operator keeps none
    assert "not kept" in keep(dataset, tmp_path).source[NOTE_KEY]
    assert not (tmp_path / FOLDER).exists() and KEPT_KEY not in dataset.source and NOTE_KEY not in dataset.source
    run = load_run(save_on(tmp_path, "big", small.source))
    assert run.config.dataset[NOTE_KEY] == small.source[NOTE_KEY]  # the run says so


def test_two_runs_on_the_same_data_share_one_copy_removed_with_the_last(upload, tmp_path):
    root = tmp_path / "runs"
    first, second = keep(load_source(upload), root), keep(load_source(upload), root)
    assert first.source[KEPT_KEY] == second.source[KEPT_KEY]
    save_on(root, "a", first.source), save_on(root, "b", second.source)
    assert len(list((root / FOLDER).iterdir())) == 1
    delete_run(root, "a")
    assert kept_path(root, first.source[KEPT_KEY]).is_file()  # b still names it
    delete_run(root, "b", in_use=[first.source[KEPT_KEY]])  # a job still trains on it, not saved yet
    assert kept_path(root, first.source[KEPT_KEY]).is_file()
    assert release(root) == [kept_path(root, first.source[KEPT_KEY])]  # no run names it, no job uses it
    assert not list((root / FOLDER).iterdir())


def test_a_changed_copy_is_refused_naming_the_file(upload, tmp_path):
    root = tmp_path / "runs"
    source = keep(load_source(upload), root).source
    path = kept_path(root, source[KEPT_KEY])
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # one pixel changed on disk
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"runs/\.data/{path.name}: its SHA-256 is .*the file was changed"):
        load_dataset(source, root)
    path.unlink()
    with pytest.raises(ValueError, match=rf"{path.name}: the run's kept copy of its training data is missing"):
        load_dataset(source, root)
    with pytest.raises(ValueError, match="must be a SHA-256 in hex"):
        load_dataset({KEPT_KEY: "../../etc/passwd"}, root)


@pytest.mark.parametrize("tensors, meta, error", [
    ({"images": np.zeros((2, 1, 4, 4), np.int32)}, {"name": "x", "class_names": None}, "must be uint8 or float32"),
    ({"images": np.full((2, 1, 4, 4), 2, np.float32)}, {"name": "x", "class_names": None}, "finite and in"),
    ({"images": np.zeros((2, 1, 4, 4), np.uint8), "code": np.zeros(1, np.uint8)}, {"name": "x", "class_names": None},
     "expected the tensors images"),
    ({"images": np.zeros((2, 1, 4, 4), np.uint8), "labels": np.array([0, 5])}, {"name": "x", "class_names": ["a"]},
     "class indices"),
    ({"images": np.zeros((2, 1, 4, 4), np.uint8)}, {"name": 3}, "metadata must give a name"),
])
def test_a_hostile_copy_with_a_matching_name_is_refused(tmp_path, tensors, meta, error):
    """Named by its own hash (so the hash check passes), a crafted copy is still checked tensor by tensor."""
    data = st_save(tensors, metadata={"kept": json.dumps(meta)})
    digest = hashlib.sha256(data).hexdigest()
    kept_path(tmp_path, digest).parent.mkdir(exist_ok=True)
    kept_path(tmp_path, digest).write_bytes(data)
    with pytest.raises(ValueError, match=rf"\.data/{digest}\.safetensors: .*{error}"):
        load_kept(tmp_path, digest)


def test_a_copy_of_another_shape_than_the_run_expects_is_refused(upload, tmp_path):
    digest = keep(load_source(upload), tmp_path).source[KEPT_KEY]
    with pytest.raises(ValueError, match="holds 1×12×12 images, the run expects 1×28×28"):
        load_kept(tmp_path, digest, shape=(1, 28, 28))


def test_a_run_zip_carries_its_data_and_an_import_checks_it(upload, tmp_path):
    root, other = tmp_path / "runs", tmp_path / "elsewhere"
    source = keep(load_source(upload), root).source
    zipped = export_zip(save_on(root, "a", source))
    assert "a/data.safetensors" in zipfile.ZipFile(io.BytesIO(zipped)).namelist()
    imported = load_run(import_zip(zipped, other))
    digest = imported.config.dataset[KEPT_KEY]
    assert digest == source[KEPT_KEY] and not (imported.path / "data.safetensors").exists()
    Path(upload["path"]).unlink()
    kept = load_dataset(imported.config.data_source, other)  # an upload path outside `other` is never read
    np.testing.assert_array_equal(kept.batch(np.arange(30)), IMAGES[:, None] / np.float32(255))

    changed = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(zipped)) as src, zipfile.ZipFile(changed, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data[:-1] + bytes([data[-1] ^ 1]) if info.filename.endswith("data.safetensors") else data)
    with pytest.raises(ValueError, match=r"run\.zip:data\.safetensors: its SHA-256 is .*the file was changed"):
        import_zip(changed.getvalue(), tmp_path / "third", zip_name="run.zip")
    assert not (tmp_path / "third" / FOLDER).exists() and not [p for p in (tmp_path / "third").iterdir()
                                                               if not p.name.startswith(".")]

    without = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(zipped)) as src, zipfile.ZipFile(without, "w") as dst:
        for info in src.infolist():
            if not info.filename.endswith("data.safetensors"):
                dst.writestr(info, src.read(info))
    bare = load_run(import_zip(without.getvalue(), tmp_path / "fourth"))
    assert KEPT_KEY not in bare.config.dataset and "did not carry" in bare.config.dataset[NOTE_KEY]


def test_a_run_resumed_into_another_runs_folder_takes_its_copy_along(upload, tmp_path):
    """Training again on a kept copy (the CLI's --resume with another --out folder) writes the same bytes there."""
    source = keep(load_source(upload), tmp_path / "one").source
    again = keep(load_dataset(source, tmp_path / "one"), tmp_path / "two")
    assert again.source[KEPT_KEY] == source[KEPT_KEY]
    assert kept_path(tmp_path / "two", source[KEPT_KEY]).read_bytes() == kept_path(tmp_path / "one",
                                                                                   source[KEPT_KEY]).read_bytes()
    assert keep(again, tmp_path / "two") is again  # already there: nothing written
