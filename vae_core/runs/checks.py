"""A run's files as untrusted input: bounded reads, strict JSON, checked configs and tensors, no pickles.

A run folder may come from anyone (an upload, a copied folder), so every file is read as untrusted: only regular files
(never through a symlink, never a FIFO), under a size limit, JSON without NaN and at most 32 levels deep, configs with
known keys of the right types, tensors with exactly the names, shapes and dtype the config implies, all finite.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load as st_load

from ..config import ModelConfig, RunConfig, TrainConfig, from_dict
from ..model import VAE
from .files import read_file

MODEL_FILE, OPTIMIZER_FILE = "model.safetensors", "optimizer.safetensors"
JSON_FILES = ("config.json", "history.json", "metrics.json", "state.json")
RUN_FILES = (MODEL_FILE, OPTIMIZER_FILE, *JSON_FILES)
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".tar")
MAX_JSON_BYTES = 64 * 2**20  # history.json: ~50k logged steps of a 32-d model take ~35 MB
MAX_SMALL_JSON_BYTES = 2**20  # config.json, metrics.json, state.json
MAX_JSON_CONTAINERS = 1_000_000  # objects + arrays in one file ...
MAX_JSON_ITEMS = 4_000_000  # ... and values (commas): bound json.loads' time and memory to that of a legit history
MAX_JSON_DEPTH = 32
MAX_TENSOR_BYTES = 2 * 2**30
ADAM_STATE = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
_OVERFLOW = re.compile(rb"[eE][+-]?0*[0-9]{3}|[0-9]{300}")  # a float literal that may round to inf (1e400)
_CONTAINERS = frozenset((dict, list))  # json.loads makes exactly these types
_NUMBERS = frozenset((int, float, type(None)))
_SCALARS = frozenset((int, float, str, bool, type(None)))


def empty_history() -> dict[str, list]:
    """The history of a run that has logged nothing yet."""
    return {"steps": [], "epochs": []}


# --------------------------------------------------------------------------- reading files


def refuse_pickles(path: Path) -> None:
    """Refuse a pickle checkpoint by its suffix: unpickling can run arbitrary code."""
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ValueError(f"{path.name}: pickle checkpoints ({path.suffix}) are never loaded, because unpickling can run "
                         "arbitrary code; only safetensors + JSON runs are accepted")


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors (safetensors holds no code: nothing is unpickled)."""
    data = read_file(path, MAX_TENSOR_BYTES)
    try:
        return st_load(data)
    except Exception as exc:  # SafetensorError and friends: the bytes are not a safetensors file
        raise ValueError(f"{path.name}: not a valid safetensors file ({exc})") from None


# --------------------------------------------------------------------------- strict JSON


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed (numbers must be finite)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]}... is too large (numbers must be finite)")
    return value


def _float_sized_int(text: str) -> int:
    if len(text.lstrip("-")) > 300:
        raise ValueError(f"{text[:20]}... is too large (numbers must fit in a float)")
    return int(text)


def read_json(path: Path, max_bytes: int | None = None) -> Any:
    """Parse a run's JSON file (size-, nesting- and count-limited, numbers finite) or raise ValueError naming it."""
    limit = max_bytes or (MAX_JSON_BYTES if path.name == "history.json" else MAX_SMALL_JSON_BYTES)
    raw = read_file(path, limit)
    containers = raw.count(b"[") + raw.count(b"{")
    if containers > MAX_JSON_CONTAINERS or containers + raw.count(b",") > MAX_JSON_ITEMS:
        raise ValueError(f"{path.name}: too many JSON values (at most {MAX_JSON_CONTAINERS:,} objects and arrays "
                         f"and {MAX_JSON_ITEMS:,} values)")
    slow = _OVERFLOW.search(raw) is not None  # check every number only when one may be too large
    try:
        obj = json.loads(raw.decode("utf-8"), parse_constant=_no_constant,
                         parse_float=_finite_float if slow else float, parse_int=_float_sized_int if slow else int)
    except RecursionError:  # the C parser counts its own recursion: 100k nested brackets fail fast, never crash
        raise ValueError(f"{path.name}: JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN/Infinity, ints of > 4300 digits
        raise ValueError(f"{path.name}: not valid JSON ({exc})") from None
    if _deeper_than(obj, MAX_JSON_DEPTH):
        raise ValueError(f"{path.name}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return obj


def _deeper_than(obj: Any, limit: int) -> bool:
    """Whether obj nests objects/arrays more than limit levels (iterative: no recursion on hostile input)."""
    level, depth = [obj] if type(obj) in _CONTAINERS else [], 1
    while level:
        if depth > limit:
            return True
        level = [c for item in level for c in (item.values() if type(item) is dict else item)
                 if type(c) in _CONTAINERS]
        depth += 1
    return False


def read_optional_json(path: Path, check: Callable[[Any], dict], default: dict) -> dict:
    """An optional JSON file of a run, checked; default when the file is absent."""
    return check(read_json(path)) if os.path.lexists(path) else default


# --------------------------------------------------------------------------- configs


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return abs(v) < 1e300 if isinstance(v, int) else math.isfinite(v)


def _check_field(owner: str, key: str, value: Any, default: Any) -> None:
    """A config value must have its field's JSON type: int, finite number, string, bool or a list of ints."""
    if isinstance(default, bool):
        ok, want = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, want = _is_int(value), "an integer"
    elif isinstance(default, float):
        ok, want = _is_number(value), "a finite number"
    elif isinstance(default, str):
        ok, want = isinstance(value, str) and len(value) <= 256, "a string"
    elif isinstance(default, tuple):
        ok, want = isinstance(value, list) and 0 < len(value) <= 64 and all(map(_is_int, value)), "a list of integers"
    else:
        ok, want = True, ""
    if not ok:
        raise ValueError(f"config.json: {owner}.{key} must be {want}, got {json.dumps(value)[:80]}")


def _config(cls: type, data: Any, owner: str) -> Any:
    """Rebuild a config dataclass from untrusted JSON: known keys, right types, its own range checks."""
    if not isinstance(data, dict):
        raise ValueError(f"config.json: '{owner}' must be a JSON object, got {type(data).__name__}")
    defaults = {f.name: None if f.default is MISSING else f.default for f in fields(cls)}
    for key, value in data.items():
        if key in defaults:
            _check_field(owner, key, value, defaults[key])
    if cls is TrainConfig and "device" in data and not re.fullmatch(r"cpu|cuda(:\d{1,2})?|mps", data["device"]):
        raise ValueError(f"config.json: train.device must be cpu, cuda, cuda:N or mps, got {data['device'][:80]!r}")
    try:
        return from_dict(cls, data)
    except ValueError as exc:
        raise ValueError(f"config.json: {owner}: {exc}") from None


def _check_dataset(dataset: Any) -> dict:
    if not isinstance(dataset, dict) or not all(isinstance(v, (str, int, float, bool, type(None)))
                                                for v in dataset.values()):
        raise ValueError("config.json: 'dataset' must be an object of plain values (kind, name, path, ...)")
    return dataset


def load_config(run_dir: Path) -> RunConfig:
    """config.json as a RunConfig; unknown keys, wrong types and out-of-range values are refused."""
    raw = read_json(Path(run_dir) / "config.json")
    if not isinstance(raw, dict) or "model" not in raw:
        raise ValueError("config.json: expected an object with 'model', 'train' and 'dataset'")
    unknown = sorted(set(raw) - {"model", "train", "dataset"})
    if unknown:
        raise ValueError(f"config.json: unknown keys {unknown} (expected 'model', 'train' and 'dataset')")
    train = raw.get("train", {})
    if isinstance(train, dict):  # a run saved before schedules (or the output bias's start) existed was trained at
        train = {"lr_schedule": "constant", "output_bias": "torch", **train}  # a constant rate from torch's init
    model = raw["model"]
    if isinstance(model, dict):  # a run saved before conv decoders had a bias per pixel has one per channel
        model = {"pixel_bias": False, **model}
    return RunConfig(model=_config(ModelConfig, model, "model"),
                     train=_config(TrainConfig, train, "train"),
                     dataset=_check_dataset(raw.get("dataset", {})))


# --------------------------------------------------------------------------- tensors


def model_skeleton(config: ModelConfig) -> VAE:
    """The model the config describes, on the meta device: shapes without allocating (a config can claim anything)."""
    try:
        with torch.device("meta"):
            model = VAE(config)
    except (RuntimeError, ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"config.json: the model it describes cannot be built ({exc})") from None
    nbytes = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    if nbytes > MAX_TENSOR_BYTES:
        raise ValueError(f"config.json: the model it describes needs {nbytes:,} bytes of weights, over the "
                         f"{MAX_TENSOR_BYTES:,}-byte limit")
    return model


def check_weights(weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], name: str) -> None:
    """Tensor names, dtypes and shapes must be exactly those of the model the config describes, all finite."""
    missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or extra:
        raise ValueError(f"{name}: tensors do not match config.json (missing: {missing[:5]}, unexpected: {extra[:5]})")
    for key, ref in expected.items():
        if weights[key].dtype != ref.dtype:
            raise ValueError(f"{name}: tensor {key!r} has dtype {weights[key].dtype}, expected {ref.dtype}")
        if weights[key].shape != ref.shape:
            raise ValueError(f"{name}: tensor {key!r} has shape {tuple(weights[key].shape)}, config.json implies "
                             f"{tuple(ref.shape)}")
        if not torch.isfinite(weights[key]).all():
            raise ValueError(f"{name}: tensor {key!r} holds NaN or inf")


def check_optimizer(tensors: dict[str, torch.Tensor], groups: Any, model: VAE) -> None:
    """Adam's saved moments must fit the model's parameters; its param groups must be well-formed."""
    params = list(model.parameters())
    ids = []
    for group in groups if isinstance(groups, list) else [None]:
        if not isinstance(group, dict) or not isinstance(group.get("params"), list):
            raise ValueError("state.json: optimizer_param_groups must be a list of objects with 'params'")
        ids += group["params"]
        bad = [k for k, v in group.items() if k != "params" and not (
            v is None or isinstance(v, bool) or _is_number(v) or k == "betas" and isinstance(v, list)
            and len(v) == 2 and all(map(_is_number, v)))]
        if bad:
            raise ValueError(f"state.json: optimizer setting(s) {bad} have the wrong type")
    if sorted(i for i in ids if _is_int(i)) != list(range(len(params))) or not all(map(_is_int, ids)):
        raise ValueError(f"state.json: optimizer_param_groups do not list the model's {len(params)} parameters")
    for key, value in tensors.items():
        index, _, name = key.partition(".")
        if not index.isdigit() or int(index) >= len(params) or name not in ADAM_STATE:
            raise ValueError(f"{OPTIMIZER_FILE}: unexpected tensor {key!r}")
        shape = () if name == "step" else params[int(index)].shape
        if value.dtype != torch.float32 or value.shape != shape or not torch.isfinite(value).all():
            raise ValueError(f"{OPTIMIZER_FILE}: tensor {key!r} must be finite float32 of shape {tuple(shape)}")


# --------------------------------------------------------------------------- history, metrics, state


def _plain(value: Any) -> bool:
    """A history/metrics value read by read_json (numbers already finite): scalar, or a flat list of numbers."""
    if type(value) is list:
        return all(type(v) in _NUMBERS for v in value)
    return type(value) in _SCALARS


def check_history(history: Any) -> dict:
    """history.json: 'steps' and 'epochs', each a list of rows with an integer index and plain values."""
    if not isinstance(history, dict):
        raise ValueError("history.json: expected a JSON object with 'steps' and 'epochs'")
    for key, index in (("steps", "step"), ("epochs", "epoch")):
        rows = history.setdefault(key, [])
        if not isinstance(rows, list) or not all(
                isinstance(r, dict) and _is_int(r.get(index)) and all(map(_plain, r.values())) for r in rows):
            raise ValueError(f"history.json: '{key}' must be a list of objects with an integer '{index}' and "
                             "numbers (or flat lists of numbers) as values")
    return history


def check_metrics(metrics: Any) -> dict:
    """metrics.json: plain values, with the well-known keys of the right numeric type."""
    if not isinstance(metrics, dict) or not all(map(_plain, metrics.values())):
        raise ValueError("metrics.json: expected a JSON object of numbers")
    for key, ok in (("epochs_done", _is_int), ("step", _is_int), ("active_units", _is_int),
                    ("val_neg_elbo", _is_number), ("val_recon", _is_number), ("val_kl", _is_number)):
        value = metrics.get(key)
        if value is not None and not ok(value):
            raise ValueError(f"metrics.json: {key} must be a number, got {json.dumps(value)[:80]}")
    return metrics


def check_state(state: Any) -> dict:
    """state.json: step and epoch >= 0, finished, saved_at and the optimizer's param groups of the right types."""
    if not isinstance(state, dict):
        raise ValueError("state.json: expected a JSON object")
    for key, ok, want in (("step", _is_int, "an integer >= 0"), ("epoch", _is_int, "an integer >= 0"),
                          ("finished", lambda v: isinstance(v, bool), "true or false"),
                          ("saved_at", _is_number, "a number"),
                          ("optimizer_param_groups", lambda v: isinstance(v, list), "a list")):
        if key in state and not (ok(state[key]) and (key not in ("step", "epoch") or state[key] >= 0)):
            raise ValueError(f"state.json: {key} must be {want}, got {json.dumps(state[key])[:80]}")
    imported = state.get("imported")  # where an imported model came from (vae_core/imports/onnx_run.py)
    if imported is not None and not (isinstance(imported, dict) and all(
            _plain(v) or (isinstance(v, dict) and all(map(_plain, v.values()))) for v in imported.values())):
        raise ValueError("state.json: imported must be an object of plain values and objects of plain values")
    return state
