"""Run folders on disk: save/load round trips, the runs folder (list, rename, delete, unique names), zip export/import."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vae_core
from vae_core.config import ModelConfig, RunConfig, TrainConfig
from vae_core.runs import (MODEL_FILE, delete_run, export_zip, import_zip, list_runs, load_run, recover_runs,
                           rename_run, resolve_run, sanitize_name, save_run, tensors_to_optimizer_state,
                           unique_run_name)
from vae_core.jobs import build_model

TINY = ModelConfig(input_shape=(1, 8, 8), latent_dim=2, hidden_sizes=(8,))


def make_run(path: Path, seed: int = 0, optimizer: bool = False, dataset: dict | None = None,
             likelihood: str = "bernoulli") -> Path:
    """A tiny saved run (no training): seeded weights, a short history, metrics, optionally Adam state."""
    config = RunConfig(model=ModelConfig(**{**TINY.__dict__, "likelihood": likelihood}),
                       train=TrainConfig(epochs=2, seed=seed), dataset=dataset or {"kind": "digits", "name": "digits"})
    model = build_model(config.model, seed)
    opt = None
    if optimizer:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        sum(p.sum() for p in model.parameters()).backward()
        opt.step()
    history = {"steps": [{"step": i + 1, "epoch": 1, "total": 40.0 - i, "kl_per_dim": [0.1, 0.2]} for i in range(3)],
               "epochs": [{"epoch": 1, "step": 3, "val_neg_elbo": 38.5}]}
    metrics = {"epochs_done": 1, "val_neg_elbo": 38.5 + seed, "active_units": 1, "step": 3}
    return save_run(path, model, config, history, metrics, optimizer=opt, state={"step": 3, "epoch": 1})


def files_of(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.iterdir())}


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# ----------------------------------------------------------------------------- save / load


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "gaussian-learned"])
def test_save_then_load_gives_back_the_same_run(tmp_path, likelihood):
    path = make_run(tmp_path / "r", seed=3, optimizer=True, likelihood=likelihood)
    run = load_run(path, with_optimizer=True)
    assert same_weights(run.model, build_model(run.config.model, 3)) is False  # Adam moved the weights
    assert run.config.model == ModelConfig(**{**TINY.__dict__, "likelihood": likelihood})
    assert run.config.train.seed == 3 and run.config.dataset == {"kind": "digits", "name": "digits"}
    assert [r["step"] for r in run.history["steps"]] == [1, 2, 3] and run.metrics["val_neg_elbo"] == 41.5
    assert run.state["step"] == 3 and run.state["epoch"] == 1
    assert not any(t.is_meta for t in [*run.model.state_dict().values(), *run.model.buffers()])  # unsaved ones too
    x = torch.rand(5, 1, 8, 8)
    x_params = run.model.decode(run.model.encode(x)[0])
    assert torch.isfinite(run.model.decode_mean(run.model.encode(x)[0])).all()
    assert torch.isfinite(run.model.likelihood.log_prob(x, x_params, run.model.obs_log_sigma())).all()
    opt = torch.optim.Adam(run.model.parameters())
    opt.load_state_dict(tensors_to_optimizer_state(run.optimizer_tensors, run.state["optimizer_param_groups"]))
    assert len(opt.state) == len(list(run.model.parameters()))


def test_loading_a_run_does_not_touch_the_global_rng(tmp_path):
    make_run(tmp_path / "r")
    before = torch.random.get_rng_state()
    load_run(tmp_path / "r")
    assert torch.equal(before, torch.random.get_rng_state())


def test_a_second_save_replaces_the_run_and_leaves_no_leftovers(tmp_path):
    make_run(tmp_path / "r", seed=0)
    make_run(tmp_path / "r", seed=1)
    assert load_run(tmp_path / "r").config.train.seed == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_saving_over_a_symlink_replaces_the_link_never_its_target(tmp_path):
    target = make_run(tmp_path / "elsewhere" / "t", seed=0)
    before = files_of(target)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "r").symlink_to(target, target_is_directory=True)
    make_run(tmp_path / "runs" / "r", seed=1)
    assert not (tmp_path / "runs" / "r").is_symlink() and load_run(tmp_path / "runs" / "r").config.train.seed == 1
    assert files_of(target) == before and [p.name for p in (tmp_path / "runs").iterdir()] == ["r"]


def test_non_finite_metrics_are_saved_as_null_not_lost(tmp_path):
    model = build_model(TINY, 0)
    save_run(tmp_path / "r", model, RunConfig(model=TINY), metrics={"val_neg_elbo": float("nan"), "val_kl": 1.5})
    assert load_run(tmp_path / "r").metrics == {"val_neg_elbo": None, "val_kl": 1.5}


# ----------------------------------------------------------------------------- names


@pytest.mark.parametrize("raw, clean", [("my run", "my-run"), ("../../etc", "etc"), (".hidden", "hidden"),
                                        ("β-VAE (4)", "VAE-4"), ("a" * 80, "a" * 64), ("x/y\\z", "x-y-z")])
def test_sanitize_name(raw, clean):
    assert sanitize_name(raw) == clean


@pytest.mark.parametrize("raw", ["", "..", ".", "///", "ñññ", "-_-"])
def test_sanitize_name_refuses_names_without_usable_characters(raw):
    with pytest.raises(ValueError, match="no usable characters"):
        sanitize_name(raw)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=100))
def test_sanitized_names_are_safe_and_stable(raw):
    try:
        clean = sanitize_name(raw)
    except ValueError:
        return
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}[A-Za-z0-9]|[A-Za-z0-9]", clean)
    assert sanitize_name(clean) == clean and clean not in (".", "..")


def test_unique_names_stay_valid_at_the_length_limit(tmp_path):
    base = "r" * 64
    (tmp_path / base).mkdir()
    name = unique_run_name(tmp_path, base)
    assert name == "r" * 62 + "-2" and resolve_run(tmp_path, name) == tmp_path.resolve() / name


# ----------------------------------------------------------------------------- the runs folder


def test_list_runs_is_newest_first_and_skips_what_is_not_a_run(tmp_path):
    make_run(tmp_path / "old", seed=0)
    make_run(tmp_path / "new", seed=1)
    os.utime(tmp_path / "old" / MODEL_FILE, (1, 1))
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hi")
    make_run(tmp_path / ".hidden")
    broken = make_run(tmp_path / "broken")
    (broken / "config.json").write_text("{not json")
    rows = list_runs(tmp_path)
    assert [r.name for r in rows] == ["new", "old"]
    assert rows[0].val_neg_elbo == 39.5 and rows[0].epochs == 1 and rows[0].latent_dim == 2


def test_one_bad_metrics_file_does_not_break_the_listing(tmp_path):
    make_run(tmp_path / "good")
    bad = make_run(tmp_path / "bad")
    (bad / "metrics.json").write_text(json.dumps({"epochs_done": "lots", "val_neg_elbo": [1]}))
    assert [r.name for r in list_runs(tmp_path)] == ["good"]


def test_rename_run(tmp_path):
    make_run(tmp_path / "a")
    make_run(tmp_path / "b")
    new = rename_run(tmp_path, "a", "my new name")
    assert new.name == "my-new-name" and load_run(new).config.model == TINY and not (tmp_path / "a").exists()
    with pytest.raises(ValueError, match="already exists"):
        rename_run(tmp_path, "b", "my-new-name")
    with pytest.raises(ValueError, match="not a run folder"):
        rename_run(tmp_path, "missing", "c")
    assert load_run(tmp_path / "b").config.train.seed == 0


def test_delete_run(tmp_path):
    make_run(tmp_path / "a")
    (tmp_path / "not-a-run").mkdir()
    delete_run(tmp_path, "a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-run"]
    with pytest.raises(ValueError, match="not a run folder"):
        delete_run(tmp_path, "not-a-run")
    with pytest.raises(ValueError, match="not a run folder"):
        delete_run(tmp_path, "a")


def test_a_delete_interrupted_after_its_rename_is_finished_by_recover_runs(tmp_path):
    make_run(tmp_path / ".a.del-x1")  # what delete_run leaves if killed between its rename and rmtree
    recover_runs(tmp_path)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- zip export / import


def test_export_then_import_round_trips(tmp_path):
    src = make_run(tmp_path / "src" / "digits-run", optimizer=True)
    data = export_zip(src)
    first, second = import_zip(data, tmp_path / "runs"), import_zip(data, tmp_path / "runs")
    assert (first.name, second.name) == ("digits-run", "digits-run-2")
    assert files_of(first) == files_of(src)
    assert same_weights(load_run(second).model, load_run(src).model)
    named = import_zip(data, tmp_path / "runs", name="Shared by Ann")
    assert named.name == "Shared-by-Ann"
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".")]


def test_an_imported_run_never_points_the_server_at_files_outside_the_runs_folder(tmp_path):
    from vae_core.data import load_source

    outside = {"kind": "path", "path": "/etc/passwd", "labels_path": None, "name": "passwd"}
    imported = import_zip(export_zip(make_run(tmp_path / "src" / "r", dataset=outside)), tmp_path / "runs")
    dataset = load_run(imported).config.dataset
    assert "/etc/passwd" not in (dataset.get("path"), dataset.get("labels_path"))
    assert dataset["kind"] == "imported-path" and dataset["name"] == "passwd"
    with pytest.raises(ValueError, match="unknown dataset source"):
        load_source({k: v for k, v in dataset.items() if k != "name"})
    inside_path = str((tmp_path / "runs" / ".uploads" / "x.npz").resolve())
    inside = {"kind": "path", "path": inside_path, "labels_path": None, "name": "x"}
    kept = import_zip(export_zip(make_run(tmp_path / "src" / "k", dataset=inside)), tmp_path / "runs")
    assert load_run(kept).config.dataset == inside


def test_engine_never_unpickles():
    """No module of the engine calls an unpickling loader (uploads must never be unpickled)."""
    engine = Path(vae_core.__file__).parent
    for module in engine.rglob("*.py"):
        source = module.read_text()
        for call in ("torch.load(", "pickle.load", "allow_pickle=True"):
            assert call not in source, f"{module.name} calls {call}"
