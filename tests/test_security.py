"""Untrusted run files: only safetensors + JSON are read, every bad file is refused with a clear ValueError naming it,
no pickle payload ever runs (upload, runs folder, CLIs), and nothing is read or written outside the runs folder."""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save as st_save

from tests.test_runs import files_of, make_run
from vae_core import evaluate as evaluate_cli
from vae_core.runs import archive, checks
from vae_core import train as train_cli
from vae_core.runs import (MODEL_FILE, OPTIMIZER_FILE, delete_run, export_zip, import_zip, list_runs, load_run,
                           rename_run, resolve_run)
from vae_core.runs.checks import MAX_JSON_DEPTH

ROOT = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- helpers


class Payload:
    """Unpickling this runs a shell command that creates `marker`: the proof a loader executed a pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def pickle_bytes(marker: Path) -> bytes:
    return pickle.dumps({"state_dict": Payload(marker)})


def torch_checkpoint(marker: Path) -> bytes:
    buf = io.BytesIO()
    torch.save({"model": Payload(marker)}, buf)
    return buf.getvalue()


def write_tensors(run_dir: Path, tensors: dict[str, torch.Tensor], name: str = MODEL_FILE) -> None:
    (run_dir / name).write_bytes(st_save(tensors))


def edit_json(run_dir: Path, name: str, edit) -> None:
    obj = json.loads((run_dir / name).read_text())
    edit(obj)
    (run_dir / name).write_text(json.dumps(obj))


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in load_run(run_dir).model.state_dict().items()}


def zip_of(members: dict[str, bytes], symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, target)
    return buf.getvalue()


def run_members(run_dir: Path, folder: str = "r") -> dict[str, bytes]:
    return {f"{folder}/{k}" if folder else k: v for k, v in files_of(run_dir).items()}


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
def run_dir(tmp_path) -> Path:
    return make_run(tmp_path / "runs" / "r", optimizer=True)


def refused(path: Path, file: str, problem: str, **kwargs) -> None:
    """load_run(path) raises a ValueError that names the file and the problem."""
    with pytest.raises(ValueError) as info:
        load_run(path, **kwargs)
    assert file in str(info.value) and problem.lower() in str(info.value).lower(), str(info.value)


# ----------------------------------------------------------------------------- tensors that don't match the config


def _shape(w):
    w["encoder.mu.weight"] = torch.zeros(3, 8)


def _missing(w):
    del w["decoder.net.0.bias"]


def _extra(w):
    w["backdoor"] = torch.zeros(1)


def _float64(w):
    w["encoder.mu.bias"] = w["encoder.mu.bias"].double()


def _int(w):
    w["encoder.mu.bias"] = torch.zeros(2, dtype=torch.int32)


def _nan(w):
    w["decoder.net.2.weight"][0, 0] = float("nan")


def _inf(w):
    w["encoder.logvar.bias"][1] = float("-inf")


@pytest.mark.parametrize("corrupt, problem", [(_shape, "shape"), (_missing, "missing: ['decoder.net.0.bias']"),
                                              (_extra, "unexpected: ['backdoor']"), (_float64, "dtype"),
                                              (_int, "dtype"), (_nan, "NaN"), (_inf, "inf")])
def test_tensors_that_do_not_match_the_config_are_refused(run_dir, corrupt, problem):
    tensors = weights(run_dir)
    corrupt(tensors)
    write_tensors(run_dir, tensors)
    refused(run_dir, MODEL_FILE, problem)


@pytest.mark.parametrize("content, problem", [(b"", "not a valid safetensors"), (b"\x00" * 7, "not a valid"),
                                              (b"PK\x03\x04 a zip", "not a valid"),
                                              (struct.pack("<Q", 2**40) + b"{}", "not a valid"),
                                              (struct.pack("<Q", 60) + b'{"a":{"dtype":"F32","shape":[1000000000],'
                                               b'"data_offsets":[0,4]}}' + b"\0" * 4, "not a valid")])
def test_bytes_that_are_not_safetensors_are_refused(run_dir, content, problem):
    (run_dir / MODEL_FILE).write_bytes(content)
    refused(run_dir, MODEL_FILE, problem)


def test_a_truncated_model_file_is_refused(run_dir):
    data = (run_dir / MODEL_FILE).read_bytes()
    (run_dir / MODEL_FILE).write_bytes(data[:len(data) // 2])
    refused(run_dir, MODEL_FILE, "not a valid safetensors")


def test_optimizer_state_that_does_not_fit_the_model_is_refused(run_dir):
    opt = load_run(run_dir, with_optimizer=True).optimizer_tensors
    write_tensors(run_dir, {**opt, "1.exp_avg": torch.zeros(99)}, OPTIMIZER_FILE)
    refused(run_dir, OPTIMIZER_FILE, "shape", with_optimizer=True)
    write_tensors(run_dir, {**opt, "999.exp_avg": torch.zeros(1)}, OPTIMIZER_FILE)
    refused(run_dir, OPTIMIZER_FILE, "unexpected tensor", with_optimizer=True)
    write_tensors(run_dir, opt, OPTIMIZER_FILE)
    edit_json(run_dir, "state.json", lambda s: s["optimizer_param_groups"][0].update(params=[0, 1]))
    refused(run_dir, "state.json", "parameters", with_optimizer=True)
    edit_json(run_dir, "state.json", lambda s: s["optimizer_param_groups"][0].update(
        params=list(range(10)), betas="fast"))
    refused(run_dir, "state.json", "betas", with_optimizer=True)
    assert load_run(run_dir).optimizer_tensors is None  # without the optimizer, the model itself still loads


# ----------------------------------------------------------------------------- JSON


@pytest.mark.parametrize("name", ["config.json", "history.json", "metrics.json", "state.json"])
@pytest.mark.parametrize("content, problem", [
    (b"{not json", "not valid JSON"),
    (b'{"a": NaN}', "NaN is not allowed"),
    (b'{"a": -Infinity}', "Infinity is not allowed"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, f"nested deeper than {MAX_JSON_DEPTH}"),
    (b"[" * 500 + b"]" * 500, f"nested deeper than {MAX_JSON_DEPTH}"),  # parses fine, still refused
    (b'{"a": ' + b"[" * 100_000, "nested deeper"),  # unterminated as well
    (b'{"a": 1' + b"0" * 5000 + b"}", "not valid JSON"),  # an int of 5000 digits
])
def test_bad_json_is_refused_quickly_with_the_file_named(run_dir, name, content, problem):
    (run_dir / name).write_bytes(content)
    refused(run_dir, name, problem)


@pytest.mark.parametrize("content", [b"[" + b"[]," * 2_000_000 + b"[]]",  # 2M lists: GBs as Python objects
                                     b"[" + b"0," * 20_000_000 + b"0]"])  # 20M numbers in 40 MB
def test_json_with_millions_of_values_is_refused_before_parsing(run_dir, content):
    (run_dir / "history.json").write_bytes(content)
    refused(run_dir, "history.json", "too many JSON values")


@pytest.mark.parametrize("number", [b"1e400", b"-1e999", b"1" + b"0" * 400 + b".5", b"1" + b"0" * 400])
@pytest.mark.parametrize("name", ["config.json", "history.json", "metrics.json", "state.json"])
def test_numbers_too_large_for_a_float_are_refused(run_dir, name, number):
    (run_dir / name).write_bytes(b'{"steps": [], "x": ' + number + b"}")
    refused(run_dir, name, "too large")


def test_brackets_inside_strings_are_not_nesting(run_dir):
    edit_json(run_dir, "config.json", lambda c: c["dataset"].update(name="[" * 10_000 + "{" * 10_000))
    assert load_run(run_dir).config.dataset["name"].startswith("[[[")


@pytest.mark.parametrize("name, limit", [("config.json", checks.MAX_SMALL_JSON_BYTES),
                                         ("history.json", checks.MAX_JSON_BYTES)])
def test_huge_json_is_refused_before_it_is_read(run_dir, name, limit):
    with open(run_dir / name, "wb") as f:
        f.truncate(limit + 1)  # sparse: no need to write 64 MB
    refused(run_dir, name, f"larger than the {limit}-byte limit")


@pytest.mark.parametrize("edit, problem", [
    (lambda c: c.update(extra=1), "unknown keys ['extra']"),
    (lambda c: c["model"].update(dropout=0.5), "unknown keys: ['dropout']"),
    (lambda c: c["train"].update(optimizer="sgd"), "unknown keys: ['optimizer']"),
    (lambda c: c["model"].update(latent_dim="8"), "model.latent_dim must be an integer"),
    (lambda c: c["model"].update(latent_dim=2.5), "model.latent_dim must be an integer"),
    (lambda c: c["model"].update(latent_dim=True), "model.latent_dim must be an integer"),
    (lambda c: c["model"].update(latent_dim=0), "latent_dim must be >= 1"),
    (lambda c: c["model"].update(hidden_sizes="abc"), "hidden_sizes must be a list of integers"),
    (lambda c: c["model"].update(hidden_sizes=[1.5]), "hidden_sizes must be a list of integers"),
    (lambda c: c["model"].update(input_shape=[1, 8]), "input_shape must be (C, H, W)"),
    (lambda c: c["model"].update(arch=3), "model.arch must be a string"),
    (lambda c: c["model"].update(arch="transformer"), "arch must be one of"),
    (lambda c: c["model"].update(gaussian_sigma=-1.0), "gaussian_sigma must be > 0"),
    (lambda c: c["train"].update(lr="fast"), "train.lr must be a finite number"),
    (lambda c: c["train"].update(lr=1e400), "too large"),  # json alone would read 1e400 as inf
    (lambda c: c["train"].update(device="meta"), "train.device must be cpu, cuda, cuda:N or mps"),
    (lambda c: c.update(train=[1, 2]), "'train' must be a JSON object"),
    (lambda c: c.update(model=None), "'model' must be a JSON object"),
    (lambda c: c.update(dataset={"path": {"nested": 1}}), "'dataset' must be an object of plain values"),
    (lambda c: c.pop("model"), "expected an object with 'model'"),
])
def test_configs_with_unknown_keys_or_wrong_types_are_refused(run_dir, edit, problem):
    text = (run_dir / "config.json").read_text()
    obj = json.loads(text)
    edit(obj)
    (run_dir / "config.json").write_text(json.dumps(obj).replace("Infinity", "1e400"))
    refused(run_dir, "config.json", problem)


@pytest.mark.parametrize("edit", [lambda c: c["model"].update(hidden_sizes=[10**9]),
                                  lambda c: c["model"].update(input_shape=[3, 10**6, 10**6]),
                                  lambda c: c["model"].update(latent_dim=10**15)])
def test_a_config_describing_a_giant_model_is_refused_without_allocating_it(run_dir, edit):
    edit_json(run_dir, "config.json", edit)
    with pytest.raises(ValueError, match="config.json: the model it describes"):
        load_run(run_dir)


@pytest.mark.parametrize("name, edit, problem", [
    ("history.json", lambda h: h.update(steps="many"), "'steps' must be a list"),
    ("history.json", lambda h: h["steps"].append({"step": "x"}), "integer 'step'"),
    ("history.json", lambda h: h["epochs"].append({"epoch": 2, "val": {"deep": 1}}), "'epochs' must be a list"),
    ("metrics.json", lambda m: m.update(epochs_done="lots"), "epochs_done must be a number"),
    ("metrics.json", lambda m: m.update(val_neg_elbo="low"), "val_neg_elbo must be a number"),
    ("state.json", lambda s: s.update(step=-5), "step must be an integer >= 0"),
    ("state.json", lambda s: s.update(finished="yes"), "finished must be true or false"),
])
def test_history_metrics_and_state_of_the_wrong_shape_are_refused(run_dir, name, edit, problem):
    edit_json(run_dir, name, edit)
    refused(run_dir, name, problem)


@pytest.mark.parametrize("name", ["config.json", "history.json", "metrics.json", "state.json"])
def test_a_json_file_of_the_wrong_kind_is_refused(run_dir, name):
    (run_dir / name).write_text("[1, 2, 3]")
    refused(run_dir, name, "expected")


# ----------------------------------------------------------------------------- files that are not plain files


def test_a_symlinked_run_file_is_never_followed(run_dir, tmp_path):
    outside = make_run(tmp_path / "elsewhere" / "secret", seed=7)
    (run_dir / MODEL_FILE).unlink()
    (run_dir / MODEL_FILE).symlink_to(outside / MODEL_FILE)
    refused(run_dir, MODEL_FILE, "symbolic link")
    (run_dir / "config.json").unlink()
    (run_dir / "config.json").symlink_to("/etc/hostname")
    refused(run_dir, "config.json", "symbolic link")


@pytest.mark.timeout(30)
def test_a_fifo_in_place_of_a_run_file_is_refused_without_blocking(run_dir):
    (run_dir / "metrics.json").unlink()
    os.mkfifo(run_dir / "metrics.json")  # opening it for reading would block forever
    refused(run_dir, "metrics.json", "not a regular file")
    assert [r.name for r in list_runs(run_dir.parent)] == []


# ----------------------------------------------------------------------------- pickles never run


def test_the_payload_is_live_when_unpickled(tmp_path):
    """Control: the pickle the other tests feed in really runs its command when something unpickles it."""
    marker = tmp_path / "pwned"
    (tmp_path / "p.pkl").write_bytes(pickle_bytes(marker))
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.loads(open({str(tmp_path / 'p.pkl')!r}, 'rb').read())"],
                   check=True, timeout=60)
    assert marker.exists()


def pickle_folders(tmp_path: Path, marker: Path) -> dict[str, Path]:
    """Run folders whose 'weights' are pickles: as model.pt (torch.save), as .pkl, and disguised as safetensors."""
    good = make_run(tmp_path / "good")
    folders = {}
    for kind, filename, data in (("pt", "model.pt", torch_checkpoint(marker)), ("pkl", "model.pkl", pickle_bytes(marker)),
                                 ("disguised", MODEL_FILE, pickle_bytes(marker)),
                                 ("disguised-torch", MODEL_FILE, torch_checkpoint(marker))):
        folder = tmp_path / "runs" / kind
        folder.mkdir(parents=True)
        (folder / "config.json").write_bytes((good / "config.json").read_bytes())
        (folder / filename).write_bytes(data)
        folders[kind] = folder
    return folders


def test_pickles_in_the_runs_folder_never_run(tmp_path):
    marker = tmp_path / "pwned"
    folders = pickle_folders(tmp_path, marker)
    for kind, folder in folders.items():
        problem = "pickle checkpoints" if kind in ("pt", "pkl") else "not a valid safetensors"
        refused(folder, "model.", problem, with_optimizer=True)
    assert {r.name for r in list_runs(tmp_path / "runs")} <= {"disguised", "disguised-torch"}  # listed, never loaded
    with pytest.raises(ValueError, match="pickle checkpoints"):
        load_run(folders["pt"] / "model.pt")
    assert not marker.exists()


@pytest.mark.parametrize("members", [
    lambda m: {"r/model.pt": torch_checkpoint(m)},
    lambda m: {"r/model.safetensors": pickle_bytes(m)},
    lambda m: {"r/model.safetensors": torch_checkpoint(m)},
    lambda m: {"r/data.pkl": pickle_bytes(m)},
])
def test_pickles_in_an_uploaded_zip_never_run(tmp_path, members):
    marker = tmp_path / "pwned"
    good = files_of(make_run(tmp_path / "good"))
    data = zip_of({"r/config.json": good["config.json"], **members(marker)})
    with pytest.raises(ValueError, match="upload.zip"):
        import_zip(data, tmp_path / "runs")
    assert not marker.exists()
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


@pytest.mark.parametrize("kind", ["pt", "disguised", "disguised-torch"])
def test_pickles_given_to_the_command_lines_never_run(tmp_path, kind, capsys):
    marker = tmp_path / "pwned"
    folder = pickle_folders(tmp_path, marker)[kind]
    assert evaluate_cli.main([str(folder), "--iwae-k", "0"]) == 2
    assert train_cli.main(["--resume", str(folder), "--epochs", "2", "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 2 and ("pickle" in err or "safetensors" in err)
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_pickles_given_to_the_real_cli_processes_never_run(tmp_path):
    marker = tmp_path / "pwned"
    folders = pickle_folders(tmp_path, marker)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for folder in folders.values():
        for argv in (["-m", "vae_core.evaluate", str(folder)],
                     ["-m", "vae_core.train", "--resume", str(folder), "--epochs", "2", "--out", str(folder)]):
            done = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=300)
            assert done.returncode == 2 and "error:" in done.stderr, done.stderr
    assert not marker.exists()


# ----------------------------------------------------------------------------- staying inside the runs folder


@pytest.mark.parametrize("name", ["../x", "..", ".", "", "/etc", "/etc/passwd", "a/b", "a\\b", "~root", " r", "r\0"])
def test_resolve_run_refuses_names_that_leave_the_runs_folder(tmp_path, name):
    with pytest.raises(ValueError, match="not allowed|no usable characters"):
        resolve_run(tmp_path, name)


def test_a_symlinked_run_folder_is_never_followed(tmp_path):
    root, outside = tmp_path / "runs", make_run(tmp_path / "outside" / "victim")
    make_run(root / "mine")
    (root / "link").symlink_to(outside, target_is_directory=True)
    before = files_of(outside)
    assert [r.name for r in list_runs(root)] == ["mine"]
    with pytest.raises(ValueError, match="outside the runs folder"):
        resolve_run(root, "link")
    with pytest.raises(ValueError, match="outside the runs folder"):
        delete_run(root, "link")
    with pytest.raises(ValueError, match="outside the runs folder"):
        rename_run(root, "link", "renamed")
    with pytest.raises(ValueError, match="outside the runs folder"):
        rename_run(root, "mine", "link")
    assert files_of(outside) == before and (root / "link").is_symlink() and (root / "mine").is_dir()


@pytest.mark.parametrize("name", ["../outside", "/etc", "/tmp", ".", "..", "outside/../mine"])
def test_rename_and_delete_refuse_runs_outside_the_folder(tmp_path, name):
    root = tmp_path / "runs"
    make_run(root / "mine")
    make_run(tmp_path / "outside")
    before = tree(tmp_path)
    with pytest.raises(ValueError):
        rename_run(root, name, "x")
    with pytest.raises(ValueError):
        delete_run(root, name)
    assert tree(tmp_path) == before


@pytest.mark.parametrize("new, lands_as", [("../../escaped", "escaped"), ("/tmp/escaped", "tmp-escaped"),
                                           ("..\\x", "x")])
def test_new_names_are_sanitized_never_followed(tmp_path, new, lands_as):
    root = tmp_path / "runs"
    make_run(root / "mine")
    assert rename_run(root, "mine", new) == root.resolve() / lands_as
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]


def test_delete_run_refuses_the_runs_folder_itself(tmp_path):
    root = tmp_path / "runs"
    make_run(root / "mine")
    for name in (".", "..", "", str(root), str(root.resolve())):
        with pytest.raises(ValueError):
            delete_run(root, name)
    assert (root / "mine" / MODEL_FILE).is_file()


@pytest.mark.parametrize("member", ["../../x/model.safetensors", "/etc/model.safetensors", "r/../../model.safetensors",
                                    "C:/Windows/model.safetensors", "..\\..\\model.safetensors"])
def test_zip_members_with_unsafe_paths_are_refused(tmp_path, run_dir, member):
    good = files_of(run_dir)
    data = zip_of({"r/config.json": good["config.json"], member: good[MODEL_FILE]})
    before = tree(tmp_path)
    with pytest.raises(ValueError, match="unsafe path"):
        import_zip(data, tmp_path / "runs")
    assert tree(tmp_path) == before


def test_zip_symlink_entries_are_refused(tmp_path, run_dir):
    good = files_of(run_dir)
    data = zip_of({"r/config.json": good["config.json"]}, symlinks={"r/model.safetensors": "/etc/passwd"})
    with pytest.raises(ValueError, match="symbolic link"):
        import_zip(data, tmp_path / "runs")


def test_zip_files_from_different_folders_are_not_mixed(tmp_path, run_dir):
    good = files_of(run_dir)
    data = zip_of({"a/config.json": good["config.json"], "b/model.safetensors": good[MODEL_FILE]})
    with pytest.raises(ValueError, match="several folders"):
        import_zip(data, tmp_path / "runs")
    data = zip_of({"a/model.safetensors": good[MODEL_FILE], "b/model.safetensors": good[MODEL_FILE],
                   "a/config.json": good["config.json"]})
    with pytest.raises(ValueError, match="appears twice"):
        import_zip(data, tmp_path / "runs")


@pytest.mark.parametrize("data, problem", [(b"", "not a zip"), (b"hello", "not a zip"), (b"PK\x05\x06" + b"\0" * 18, "needs"),
                                           (b"PK\x03\x04" + b"\xff" * 100, "not a zip")])
def test_non_zips_and_empty_zips_are_refused(tmp_path, data, problem):
    with pytest.raises(ValueError, match=problem):
        import_zip(data, tmp_path / "runs")


def test_a_zip_with_extra_files_or_too_many_entries_is_refused(tmp_path, run_dir):
    good = run_members(run_dir)
    with pytest.raises(ValueError, match="unexpected file 'r/notes.txt'"):
        import_zip(zip_of({**good, "r/notes.txt": b"hi"}), tmp_path / "runs")
    junk = {f"r/.junk{i}": b"" for i in range(archive.MAX_ZIP_MEMBERS)}
    with pytest.raises(ValueError, match="entries"):
        import_zip(zip_of({**good, **junk}), tmp_path / "runs")
    ok = import_zip(zip_of({**good, "r/.DS_Store": b"x", "__MACOSX/r/._model.safetensors": b"x"}), tmp_path / "runs")
    assert files_of(ok) == files_of(run_dir)


def _patch_sizes(data: bytes, member: str, size: int) -> bytes:
    """Rewrite a member's uncompressed size in both its local header and the central directory (a lying header)."""
    out = bytearray(data)
    name = member.encode()
    for sig, offset, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = out.find(sig)
        while at >= 0:
            if out[at + name_at:at + name_at + len(name)] == name:
                struct.pack_into("<I", out, at + offset, size)
            at = out.find(sig, at + 4)
    return bytes(out)


def test_zip_bombs_and_lying_headers_are_refused(tmp_path, run_dir, monkeypatch):
    good = run_members(run_dir)
    honest = zip_of({**good, "r/history.json": b" " * 3_000_000})  # inflates ~1000x
    monkeypatch.setattr(archive, "MAX_ZIP_BYTES", 2_000_000)
    with pytest.raises(ValueError, match="unpacks to more than 2000000 bytes"):
        import_zip(honest, tmp_path / "runs")
    monkeypatch.undo()
    claims_small = _patch_sizes(honest, "r/history.json", 1000)  # declares 1 kB, inflates to 3 MB
    with pytest.raises(ValueError, match="size differs from the archive's header|Bad CRC"):  # read stops at 1 kB
        import_zip(claims_small, tmp_path / "runs")
    claims_huge = _patch_sizes(zip_of(good), "r/history.json", 2**31)
    with pytest.raises(ValueError, match="unpacks to more than"):
        import_zip(claims_huge, tmp_path / "runs")
    monkeypatch.setattr(archive, "MAX_ZIP_BYTES", 1000)
    with pytest.raises(ValueError, match="larger than the 1000-byte limit"):
        import_zip(zip_of(good), tmp_path / "runs")
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["r"]  # only the fixture's run: nothing unpacked


def test_a_corrupt_member_is_refused(tmp_path, run_dir):
    data = bytearray(zip_of(run_members(run_dir)))
    at = data.find(b"PK\x03\x04") + 30 + len("r/config.json") + 5
    data[at] ^= 0xFF
    with pytest.raises(ValueError, match="upload.zip"):
        import_zip(bytes(data), tmp_path / "runs")


def test_streamlit_limits_uploads_and_keeps_xsrf_protection_on():
    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert server["enableXsrfProtection"] is True
    assert 0 < server["maxUploadSize"] * 2**20 <= archive.MAX_ZIP_BYTES  # the code's own limit is never looser
    assert server.get("enableCORS", True) is True


# ----------------------------------------------------------------------------- fuzzing


def _mutate(data: bytes, draw) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        if not out:
            break
        at = draw(st.integers(0, len(out) - 1))
        action = draw(st.sampled_from(["flip", "cut", "dup"]))
        if action == "flip":
            out[at] = draw(st.integers(0, 255))
        elif action == "cut":
            del out[at:at + draw(st.integers(1, 64))]
        else:
            out[at:at] = out[at:at + draw(st.integers(1, 64))]
    return bytes(out)


def fuzz_run_files(tmp_path_factory, examples: int):
    """Mutate 1-3 files of a valid run (bit flips, cuts, duplications): load_run succeeds or names the bad file."""
    base = make_run(tmp_path_factory.mktemp("fuzz") / "r", optimizer=True)
    originals = files_of(base)

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def check(data):
        for name, content in originals.items():
            (base / name).write_bytes(content)
        for name in data.draw(st.lists(st.sampled_from(sorted(originals)), min_size=1, max_size=3, unique=True)):
            (base / name).write_bytes(_mutate(originals[name], data.draw))
        try:
            run = load_run(base, with_optimizer=True)
        except ValueError as exc:
            assert str(exc).split(":")[0] in checks.RUN_FILES, str(exc)
            return
        assert all(torch.isfinite(t).all() for t in run.model.state_dict().values())

    check()


def test_fuzzed_run_files_give_a_clean_result_or_a_clear_error(tmp_path_factory):
    fuzz_run_files(tmp_path_factory, 100)


@pytest.mark.slow
def test_fuzzed_run_files_long(tmp_path_factory):
    fuzz_run_files(tmp_path_factory, 3000)


def fuzz_zips(tmp_path_factory, examples: int):
    base = make_run(tmp_path_factory.mktemp("zfuzz") / "r", optimizer=True)
    root = tmp_path_factory.mktemp("zroot")
    good = export_zip(base)

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def check(data):
        blob = _mutate(good, data.draw)
        try:
            path = import_zip(blob, root)
        except ValueError as exc:
            assert str(exc).startswith("upload.zip"), str(exc)
        else:
            load_run(path)
        assert tree(root) == [] or all(not p.startswith(".") for p in tree(root))

    check()


def test_fuzzed_zips_give_a_clean_import_or_a_clear_error(tmp_path_factory):
    fuzz_zips(tmp_path_factory, 100)


@pytest.mark.slow
def test_fuzzed_zips_long(tmp_path_factory):
    fuzz_zips(tmp_path_factory, 3000)


def object_arrays(marker: Path) -> dict[str, bytes]:
    """An .npy and an .npz whose array is pickled objects (the Payload): what np.load runs with allow_pickle=True."""
    npy, npz = io.BytesIO(), io.BytesIO()
    np.save(npy, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    np.savez(npz, x=np.array([Payload(marker)], dtype=object))
    return {"evil.npy": npy.getvalue(), "evil.npz": npz.getvalue()}


@pytest.mark.parametrize("name", ["evil.npy", "evil.npz"])
def test_a_pickled_array_uploaded_on_the_data_page_never_runs(tmp_path, monkeypatch, name):
    from streamlit.testing.v1 import AppTest

    marker = tmp_path / "pwned"
    data = object_arrays(marker)[name]
    loaded = np.load(io.BytesIO(data), allow_pickle=True)  # control: the payload is live when unpickled
    (loaded["x"] if name.endswith(".npz") else loaded)[0]  # noqa: B018 (npz members load lazily)
    assert marker.exists()
    marker.unlink()

    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=60).run()
    at.switch_page("pages/data.py").run()
    at.segmented_control(key="data_kind").set_value("upload").run()
    at.file_uploader(key="data_upload").set_value((name, data, "application/octet-stream")).run()
    assert not at.exception and name in " ".join(e.value for e in at.error)
    assert at.session_state["dataset_source"] == "digits" and not marker.exists()
