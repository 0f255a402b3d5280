"""A run on disk: one folder of safetensors + JSON. Saves are atomic; loading never unpickles and checks everything.

Every file is read as untrusted input through checks.py and written through files.py (atomic writes, a staging folder);
archive.py packs a run into a zip and unpacks an uploaded one.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import math
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import torch
from safetensors.torch import save as st_save

from ..config import RunConfig, to_dict
from ..model import VAE
from .checks import (MODEL_FILE, OPTIMIZER_FILE, check_history, check_metrics, check_optimizer, check_state,
                     check_weights, empty_history, load_config, model_skeleton, read_optional_json, read_tensors,
                     refuse_pickles)
from .files import fsync_dir, rename_to_free, stage_folder
from .kept_data import release
from .names import resolve_run, sanitize_name

_SWAPS: set[str] = set()  # run folders this process is swapping with two renames right now
_SWAPS_LOCK = threading.Lock()


@dataclass
class Run:
    path: Path
    config: RunConfig
    model: VAE
    history: dict[str, list] = field(default_factory=empty_history)
    metrics: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)  # step, epoch, finished, optimizer param_groups
    optimizer_tensors: dict[str, torch.Tensor] | None = None

    @property
    def name(self) -> str:
        return self.path.name

    def exists(self) -> bool:
        """Whether its weights are still on disk (a run can be deleted while a page shows it)."""
        return (self.path / MODEL_FILE).is_file()


# --------------------------------------------------------------------------- saving


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
                      ("history.json", history or empty_history()),
                      ("metrics.json", metrics or {}), ("state.json", state)):
        files[name] = _json_bytes(obj)
    staging = stage_folder(run_dir, files)  # every file written atomically, then the folder synced
    try:
        _swap_in(staging, run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    fsync_dir(run_dir.parent)
    return run_dir


def _free_sibling(path: Path, tag: str) -> Path:
    """An unused hidden name beside path (.name.tag-XXXXXXXX) to rename path to."""
    free = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{tag}-"))
    os.rmdir(free)
    return free


def _swap_in(staging: Path, run_dir: Path) -> None:
    """Replace run_dir by staging: one atomic exchange where the OS has it, else two renames (old kept as .old-*)."""
    if not os.path.lexists(run_dir):
        os.rename(staging, run_dir)
        return
    if _exchange(staging, run_dir):  # readers see the old run or the new one, never no run
        _remove(staging)  # staging now holds the old run
        return
    with _swapping(run_dir):  # recover_runs in another thread must not "repair" this swap while it happens
        old = _free_sibling(run_dir, "old")
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


# --------------------------------------------------------------------------- loading


def read_run_config(run_dir: str | Path) -> RunConfig:
    """A run folder's checked config.json, its tensors not read yet (what budget.py prices before any work)."""
    run_dir = Path(run_dir)
    refuse_pickles(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir}: not a run folder")
    if not os.path.lexists(run_dir / MODEL_FILE):
        for path in run_dir.iterdir():  # a pickle checkpoint in its place gets the pickle message, not 'missing'
            refuse_pickles(path)
    return load_config(run_dir)


def load_run(run_dir: str | Path, with_optimizer: bool = False) -> Run:
    """Load a run folder (safetensors + JSON only) and check every file against its config."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    model = model_skeleton(config.model)
    weights = read_tensors(run_dir / MODEL_FILE)
    check_weights(weights, model.state_dict(), MODEL_FILE)
    model.load_state_dict(weights, assign=True)  # the meta tensors become the loaded ones: no init, no global RNG
    model.reset_constants(device=next(iter(weights.values())).device)  # unsaved buffers are still meta tensors
    model.eval()
    history = read_optional_json(run_dir / "history.json", check_history, empty_history())
    metrics = read_optional_json(run_dir / "metrics.json", check_metrics, {})
    state = read_optional_json(run_dir / "state.json", check_state, {})
    opt = None
    if with_optimizer and os.path.lexists(run_dir / OPTIMIZER_FILE):
        opt = read_tensors(run_dir / OPTIMIZER_FILE)
        check_optimizer(opt, state.get("optimizer_param_groups", []), model)
    return Run(path=run_dir, config=config, model=model, history=history, metrics=metrics, state=state,
               optimizer_tensors=opt)


# --------------------------------------------------------------------------- the runs folder


def default_runs_root() -> Path:
    return Path(os.environ.get("VAE_RUNS_DIR", "runs"))


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
    metrics = read_optional_json(path / "metrics.json", check_metrics, {})
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
    if not rename_to_free(src, dst):
        raise ValueError(f"a run named {dst.name!r} already exists")
    return dst


def delete_run(root: str | Path, name: str, in_use: Iterable[str] = ()) -> None:
    """Delete a run folder: first renamed aside (atomic), then removed, so a crash never leaves half a run. Its kept
    training data goes too when no other run names it, nor a digest in in_use (jobs not saved yet, kept_data.py)."""
    path = _existing_run(root, name)
    trash = _free_sibling(path, "del")
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)
    release(root, in_use)
