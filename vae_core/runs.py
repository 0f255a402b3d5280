"""A run on disk: one folder of safetensors + JSON. Saves are atomic; loading never unpickles and checks everything.

A run folder may come from anyone (an upload, a copied folder), so every file is read as untrusted: only regular files
(never through a symlink, never a FIFO), under a size limit, JSON without NaN and at most 32 levels deep, configs with
known keys of the right types, tensors with exactly the names, shapes and dtype the config implies, all finite.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import io
import json
import math
import os
import re
import shutil
import stat
import tempfile
import threading
import time
import zipfile
import zlib
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import ModelConfig, RunConfig, TrainConfig, from_dict, to_dict
from .model import VAE

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
MAX_ZIP_BYTES = 512 * 2**20  # the upload itself, and the sum of its members' sizes
MAX_ZIP_MEMBERS = 256
ADAM_STATE = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
DATA_PATH_KEYS = ("path", "labels_path")
_SWAPS: set[str] = set()  # run folders this process is swapping with two renames right now
_SWAPS_LOCK = threading.Lock()
_HANDED_OUT: set[tuple[str, str]] = set()  # (root, name) pairs unique_run_name has returned in this process
_NAMES_LOCK = threading.Lock()


@dataclass
class Run:
    path: Path
    config: RunConfig
    model: VAE
    history: dict[str, list] = field(default_factory=lambda: {"steps": [], "epochs": []})
    metrics: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)  # step, epoch, finished, optimizer param_groups
    optimizer_tensors: dict[str, torch.Tensor] | None = None

    @property
    def name(self) -> str:
        return self.path.name


# --------------------------------------------------------------------------- saving


def _write_atomic(path: Path, data: bytes) -> None:
    """Write a file through a temporary file and a rename, so a reader never sees half of it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_dir(path: Path) -> None:
    """Make renames inside path durable (best effort: not every platform can open a folder)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """An optimizer's state as flat named tensors plus its JSON-able param groups."""
    sd = optimizer.state_dict()
    tensors = {f"{i}.{k}": v.detach().cpu().contiguous() for i, s in sd["state"].items() for k, v in s.items()
               if torch.is_tensor(v)}
    return tensors, sd["param_groups"]


def tensors_to_optimizer_state(tensors: dict[str, torch.Tensor], param_groups: list[dict]) -> dict:
    """Inverse of optimizer_to_tensors: a state_dict for optimizer.load_state_dict."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = value
    return {"state": state, "param_groups": param_groups}


def _json_bytes(obj: Any) -> bytes:
    """Strict JSON (no NaN); a non-finite number becomes null rather than failing the whole save."""
    try:
        return json.dumps(obj, allow_nan=False, default=float).encode()
    except ValueError:
        return json.dumps(_finite(obj), allow_nan=False, default=float).encode()


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def save_run(run_dir: str | Path, model: VAE, config: RunConfig, history: dict | None = None,
             metrics: dict | None = None, optimizer: torch.optim.Optimizer | None = None,
             state: dict | None = None) -> Path:
    """Write the whole run into a staging folder, then swap it in: a crash leaves the old run or the new one."""
    run_dir = Path(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    state = dict(state or {})
    files = {MODEL_FILE: st_save({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()})}
    if optimizer is not None:
        tensors, groups = optimizer_to_tensors(optimizer)
        files[OPTIMIZER_FILE] = st_save(tensors)
        state["optimizer_param_groups"] = groups
    state["saved_at"] = time.time()
    for name, obj in (("config.json", {"model": to_dict(config.model), "train": to_dict(config.train),
                                       "dataset": config.dataset}),
                      ("history.json", history or {"steps": [], "epochs": []}),
                      ("metrics.json", metrics or {}), ("state.json", state)):
        files[name] = _json_bytes(obj)
    staging = Path(tempfile.mkdtemp(dir=run_dir.parent, prefix=f".{run_dir.name}.new-"))
    try:
        staging.chmod(0o755)
        for name, data in files.items():
            _write_atomic(staging / name, data)
        _fsync_dir(staging)
        _swap_in(staging, run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _fsync_dir(run_dir.parent)
    return run_dir


def _swap_in(staging: Path, run_dir: Path) -> None:
    """Replace run_dir by staging: one atomic exchange where the OS has it, else two renames (old kept as .old-*)."""
    if not os.path.lexists(run_dir):
        os.rename(staging, run_dir)
        return
    if _exchange(staging, run_dir):  # readers see the old run or the new one, never no run
        _remove(staging)  # staging now holds the old run
        return
    with _swapping(run_dir):  # recover_runs in another thread must not "repair" this swap while it happens
        old = Path(tempfile.mkdtemp(dir=run_dir.parent, prefix=f".{run_dir.name}.old-"))
        os.rmdir(old)
        os.rename(run_dir, old)
        try:
            os.rename(staging, run_dir)  # a crash right here is repaired by recover_runs
        except BaseException:
            os.rename(old, run_dir)  # put the previous run back before reporting the failure
            raise
    _remove(old)


def _remove(path: Path) -> None:
    """Remove a folder, or just the link if it is a symlink (never what it points to)."""
    if path.is_symlink():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _swapping(run_dir: Path) -> Iterator[None]:
    key = os.path.abspath(run_dir)
    with _SWAPS_LOCK:
        _SWAPS.add(key)
    try:
        yield
    finally:
        with _SWAPS_LOCK:
            _SWAPS.discard(key)


@functools.cache
def _renameat2() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux's renameat2(RENAME_EXCHANGE); False where the OS or filesystem can't."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def recover_runs(root: str | Path) -> None:
    """Put back a run whose save was interrupted between its two renames; drop stale staging and deleted folders."""
    root = Path(root)
    if not root.is_dir():
        return
    for leftover in root.glob(".*.old-*"):
        target = root / leftover.name[1:].rsplit(".old-", 1)[0]
        with _SWAPS_LOCK:
            if os.path.abspath(target) in _SWAPS:
                continue
        try:
            if leftover.is_symlink():
                continue
            if not os.path.lexists(target) and (leftover / MODEL_FILE).is_file():
                os.rename(leftover, target)
            else:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue
    for leftover in [*root.glob(".*.new-*"), *root.glob(".*.del-*")]:
        try:
            stale = ".del-" in leftover.name or time.time() - leftover.lstat().st_mtime > 3600
            if stale and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue


# --------------------------------------------------------------------------- reading untrusted files


def _read_file(path: Path, limit: int) -> bytes:
    """A regular file's bytes, refusing symlinks, FIFOs and devices, and anything past limit bytes."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ValueError(f"{path.name}: missing from run folder {path.parent.name!r}") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError(f"{path.name}: is a symbolic link; run files must be plain files in the run folder") \
                from None
        raise ValueError(f"{path.name}: cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path.name}: not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path.name}: {info.st_size} bytes is larger than the {limit}-byte limit")
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path.name}: larger than the {limit}-byte limit")
    return data


_OVERFLOW = re.compile(rb"[eE][+-]?0*[0-9]{3}|[0-9]{300}")  # a float literal that may round to inf (1e400)


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
    raw = _read_file(path, limit)
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


_CONTAINERS = frozenset((dict, list))  # json.loads makes exactly these types
_NUMBERS = frozenset((int, float, type(None)))
_SCALARS = frozenset((int, float, str, bool, type(None)))


def _refuse_pickles(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ValueError(f"{path.name}: pickle checkpoints ({path.suffix}) are never loaded, because unpickling can run "
                         "arbitrary code; only safetensors + JSON runs are accepted")


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    data = _read_file(path, MAX_TENSOR_BYTES)
    try:
        return st_load(data)
    except Exception as exc:  # SafetensorError and friends: the bytes are not a safetensors file
        raise ValueError(f"{path.name}: not a valid safetensors file ({exc})") from None


# --------------------------------------------------------------------------- checking what was read


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
    return RunConfig(model=_config(ModelConfig, raw["model"], "model"),
                     train=_config(TrainConfig, raw.get("train", {}), "train"),
                     dataset=_check_dataset(raw.get("dataset", {})))


def _skeleton(config: ModelConfig) -> VAE:
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


def _check_weights(weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], name: str) -> None:
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


def _plain(value: Any) -> bool:
    """A history/metrics value read by read_json (numbers already finite): scalar, or a flat list of numbers."""
    if type(value) is list:
        return all(type(v) in _NUMBERS for v in value)
    return type(value) in _SCALARS


def _check_history(history: Any) -> dict:
    if not isinstance(history, dict):
        raise ValueError("history.json: expected a JSON object with 'steps' and 'epochs'")
    for key, index in (("steps", "step"), ("epochs", "epoch")):
        rows = history.setdefault(key, [])
        if not isinstance(rows, list) or not all(
                isinstance(r, dict) and _is_int(r.get(index)) and all(map(_plain, r.values())) for r in rows):
            raise ValueError(f"history.json: '{key}' must be a list of objects with an integer '{index}' and "
                             "numbers (or flat lists of numbers) as values")
    return history


def _check_metrics(metrics: Any) -> dict:
    if not isinstance(metrics, dict) or not all(map(_plain, metrics.values())):
        raise ValueError("metrics.json: expected a JSON object of numbers")
    for key, ok in (("epochs_done", _is_int), ("step", _is_int), ("active_units", _is_int),
                    ("val_neg_elbo", _is_number), ("val_recon", _is_number), ("val_kl", _is_number)):
        value = metrics.get(key)
        if value is not None and not ok(value):
            raise ValueError(f"metrics.json: {key} must be a number, got {json.dumps(value)[:80]}")
    return metrics


def _check_state(state: Any) -> dict:
    if not isinstance(state, dict):
        raise ValueError("state.json: expected a JSON object")
    for key, ok, want in (("step", _is_int, "an integer >= 0"), ("epoch", _is_int, "an integer >= 0"),
                          ("finished", lambda v: isinstance(v, bool), "true or false"),
                          ("saved_at", _is_number, "a number"),
                          ("optimizer_param_groups", lambda v: isinstance(v, list), "a list")):
        if key in state and not (ok(state[key]) and (key not in ("step", "epoch") or state[key] >= 0)):
            raise ValueError(f"state.json: {key} must be {want}, got {json.dumps(state[key])[:80]}")
    return state


def _check_optimizer(tensors: dict[str, torch.Tensor], groups: Any, model: VAE) -> None:
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


def _refuse_pickle_folder(run_dir: Path) -> None:
    """A folder that holds a pickle checkpoint instead of model.safetensors gets the pickle message, not 'missing'."""
    for p in run_dir.iterdir():
        _refuse_pickles(p)


def load_run(run_dir: str | Path, with_optimizer: bool = False) -> Run:
    """Load a run folder (safetensors + JSON only) and check every file against its config."""
    run_dir = Path(run_dir)
    _refuse_pickles(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir}: not a run folder")
    if not os.path.lexists(run_dir / MODEL_FILE):
        _refuse_pickle_folder(run_dir)
    config = load_config(run_dir)
    model = _skeleton(config.model)
    weights = _read_tensors(run_dir / MODEL_FILE)
    _check_weights(weights, model.state_dict(), MODEL_FILE)
    model.load_state_dict(weights, assign=True)  # the meta tensors become the loaded ones: no init, no global RNG
    model.eval()
    optional = {}
    for name, default, check in (("history.json", {"steps": [], "epochs": []}, _check_history),
                                 ("metrics.json", {}, _check_metrics), ("state.json", {}, _check_state)):
        optional[name] = check(read_json(run_dir / name)) if os.path.lexists(run_dir / name) else default
    opt = None
    if with_optimizer and os.path.lexists(run_dir / OPTIMIZER_FILE):
        opt = _read_tensors(run_dir / OPTIMIZER_FILE)
        _check_optimizer(opt, optional["state.json"].get("optimizer_param_groups", []), model)
    return Run(path=run_dir, config=config, model=model, history=optional["history.json"],
               metrics=optional["metrics.json"], state=optional["state.json"], optimizer_tensors=opt)


# --------------------------------------------------------------------------- the runs folder


def default_runs_root() -> Path:
    return Path(os.environ.get("VAE_RUNS_DIR", "runs"))


def sanitize_name(name: str) -> str:
    """A safe folder name: letters, digits, '-', '_' and '.', no leading dot, at most 64 characters."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name))[:64].strip(".-_")
    if not clean:
        raise ValueError(f"run name {name!r} has no usable characters (letters, digits, '-', '_', '.')")
    return clean


def resolve_run(root: str | Path, name: str) -> Path:
    """The folder of run `name` inside root; refuses anything that would leave root (../, absolute, symlinks)."""
    root = Path(root).resolve()
    if not isinstance(name, str) or name != sanitize_name(name):
        raise ValueError(f"run name {name!r} is not allowed (use letters, digits, '-', '_', '.')")
    path = root / name
    if path.is_symlink() or path.resolve().parent != root:
        raise ValueError(f"run {name!r} is outside the runs folder")
    return path


def unique_run_name(root: str | Path, base: str) -> str:
    """base, or base-2, base-3, ...: the first name neither taken in root nor handed out before by this process, so
    two sessions starting a run at once never share its folder (never longer than 64 characters)."""
    base, root_key = sanitize_name(base), os.path.abspath(root)
    with _NAMES_LOCK:
        name, i = base, 2
        while os.path.lexists(Path(root) / name) or (root_key, name) in _HANDED_OUT:
            suffix = f"-{i}"
            name, i = f"{base[:64 - len(suffix)].rstrip('.-_')}{suffix}", i + 1
        _HANDED_OUT.add((root_key, name))
    return name


def _move_in(src: Path, root: Path, base: str) -> Path:
    """Rename src into root under a free name derived from base; a concurrent mover never gets the same name."""
    while True:
        dst = resolve_run(root, unique_run_name(root, base))
        try:
            os.mkdir(dst)  # claim the name atomically; rename then replaces our own empty folder
        except FileExistsError:
            continue
        try:
            os.rename(src, dst)
        except BaseException:
            os.rmdir(dst)
            raise
        return dst


@dataclass
class RunSummary:
    name: str
    path: Path
    dataset: str
    arch: str
    latent_dim: int
    epochs: int
    val_neg_elbo: float | None
    active_units: int | None
    modified: float


def _summary(path: Path) -> RunSummary:
    config = load_config(path)
    metrics = _check_metrics(read_json(path / "metrics.json")) if os.path.lexists(path / "metrics.json") else {}
    return RunSummary(name=path.name, path=path, dataset=str(config.dataset.get("name", "?")), arch=config.model.arch,
                      latent_dim=config.model.latent_dim, epochs=int(metrics.get("epochs_done") or 0),
                      val_neg_elbo=metrics.get("val_neg_elbo"), active_units=metrics.get("active_units"),
                      modified=(path / MODEL_FILE).lstat().st_mtime)


def list_runs(root: str | Path | None = None) -> list[RunSummary]:
    """Every run in root with a readable config, newest first (broken folders and symlinks are skipped)."""
    root = Path(root or default_runs_root())
    recover_runs(root)
    rows = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.name.startswith(".") or path.is_symlink() or not path.is_dir():
            continue
        try:
            rows.append(_summary(path))
        except (ValueError, OSError):  # broken, or deleted while we looked
            continue
    return sorted(rows, key=lambda r: r.modified, reverse=True)


def _existing_run(root: str | Path, name: str) -> Path:
    path = resolve_run(root, name)
    if not path.is_dir() or not (os.path.lexists(path / MODEL_FILE) or os.path.lexists(path / "config.json")):
        raise ValueError(f"{name!r} is not a run folder")
    return path


def rename_run(root: str | Path, old: str, new: str) -> Path:
    """Give run `old` a new (sanitized) name; refuses a name that is taken."""
    src, dst = _existing_run(root, old), resolve_run(root, sanitize_name(new))
    try:
        os.mkdir(dst)  # atomic claim: two renames to one name cannot both succeed
    except FileExistsError:
        raise ValueError(f"a run named {dst.name!r} already exists") from None
    try:
        os.rename(src, dst)
    except BaseException:
        os.rmdir(dst)
        raise
    return dst


def delete_run(root: str | Path, name: str) -> None:
    """Delete a run folder: first renamed aside (atomic), then removed, so a crash never leaves half a run."""
    path = _existing_run(root, name)
    trash = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.del-"))
    os.rmdir(trash)
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def export_zip(run_dir: str | Path) -> bytes:
    """The run's safetensors + JSON files as a zip archive (in memory)."""
    run_dir = Path(run_dir)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in RUN_FILES:
            if os.path.lexists(run_dir / name):
                limit = MAX_TENSOR_BYTES if name.endswith(".safetensors") else MAX_JSON_BYTES
                zf.writestr(f"{run_dir.name}/{name}", _read_file(run_dir / name, limit))
    return buf.getvalue()


# --------------------------------------------------------------------------- importing an uploaded zip


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError,
               zlib.error, ValueError)


def _member_path(info: zipfile.ZipInfo, zip_name: str) -> PurePosixPath | None:
    """A member's path, None for entries to ignore (folders, macOS metadata); refuses unsafe entries."""
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if name.startswith("/") or ".." in path.parts or re.match(r"[A-Za-z]:", name) or "\0" in name:
        raise ValueError(f"{zip_name}: member {info.filename!r} has an unsafe path (absolute, '..' or a drive)")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise ValueError(f"{zip_name}: member {info.filename!r} is a symbolic link")
    if info.is_dir() or "__MACOSX" in path.parts or path.name.startswith("."):
        return None
    if info.flag_bits & 0x1:
        raise ValueError(f"{zip_name}: member {info.filename!r} is encrypted")
    _refuse_pickles(Path(f"{zip_name}:{path.name}"))
    if path.name not in RUN_FILES:
        raise ValueError(f"{zip_name}: unexpected file {info.filename!r} (a run holds only {', '.join(RUN_FILES)})")
    return path


def _zip_members(zf: zipfile.ZipFile, zip_name: str) -> tuple[dict[str, zipfile.ZipInfo], str]:
    """The run files of an archive by name, and the folder they are in ('' at the top)."""
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise ValueError(f"{zip_name}: {len(infos)} entries; a run zip holds at most {len(RUN_FILES)} files")
    members, folders = {}, set()
    for info in infos:
        path = _member_path(info, zip_name)
        if path is None:
            continue
        if path.name in members:
            raise ValueError(f"{zip_name}: {path.name} appears twice")
        members[path.name] = info
        folders.add(str(path.parent))
    if len(folders) > 1:
        raise ValueError(f"{zip_name}: run files are spread over several folders ({sorted(folders)[:3]})")
    if MODEL_FILE not in members or "config.json" not in members:
        raise ValueError(f"{zip_name}: a run zip needs {MODEL_FILE} and config.json")
    if sum(i.file_size for i in members.values()) > MAX_ZIP_BYTES:
        raise ValueError(f"{zip_name}: unpacks to more than {MAX_ZIP_BYTES} bytes")
    return members, PurePosixPath(folders.pop()).name


def _member_bytes(zf: zipfile.ZipFile, info: zipfile.ZipInfo, zip_name: str) -> bytes:
    """A member's bytes, reading at most one byte past its declared size (a lying header is caught, not obeyed)."""
    try:
        with zf.open(info) as src:
            data = src.read(info.file_size + 1)
    except _ZIP_ERRORS as exc:
        raise ValueError(f"{zip_name}:{info.filename}: cannot be unpacked ({exc})") from None
    if len(data) != info.file_size:
        raise ValueError(f"{zip_name}:{info.filename}: size differs from the archive's header")
    return data


def _confine_dataset(run_dir: Path, config: RunConfig, root: Path) -> None:
    """An uploaded run must not make the server read its files: data paths outside root are not followed."""
    dataset = config.dataset
    paths = [dataset[k] for k in DATA_PATH_KEYS if isinstance(dataset.get(k), str)]
    if dataset.get("kind") != "path" and not paths:
        return
    inside = all(Path(p).is_absolute() and Path(p).resolve().is_relative_to(root.resolve()) for p in paths)
    if inside and paths:
        return
    raw = read_json(run_dir / "config.json")
    raw["dataset"] = {k: v for k, v in dataset.items() if k not in DATA_PATH_KEYS} | {
        "kind": "imported-path", "original_path": dataset.get("path")}  # load_source refuses this kind: never read
    _write_atomic(run_dir / "config.json", _json_bytes(raw))


def import_zip(data: bytes, root: str | Path, name: str | None = None, zip_name: str = "upload.zip") -> Path:
    """Unpack a run zip into root after validating every member and loading it in a scratch folder."""
    if len(data) > MAX_ZIP_BYTES:
        raise ValueError(f"{zip_name}: {len(data)} bytes is larger than the {MAX_ZIP_BYTES}-byte limit")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except _ZIP_ERRORS:
        raise ValueError(f"{zip_name}: not a zip archive") from None
    members, folder = _zip_members(zf, zip_name)
    base = name or _usable(folder) or _usable(Path(zip_name).stem) or "imported-run"
    sanitize_name(base)  # an unusable name= fails before anything is unpacked
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=root, prefix=".import.new-"))
    try:
        for member, info in members.items():
            (scratch / member).write_bytes(_member_bytes(zf, info, zip_name))
        try:
            run = load_run(scratch, with_optimizer=True)
        except ValueError as exc:
            raise ValueError(f"{zip_name}: {exc}") from None
        _confine_dataset(scratch, run.config, root)
        return _move_in(scratch, root, base)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _usable(name: str) -> str | None:
    try:
        return sanitize_name(name)
    except ValueError:
        return None
