"""A run on disk: one folder of safetensors + JSON. Saves are atomic; loading never unpickles and checks everything."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from .config import ModelConfig, RunConfig, TrainConfig, from_dict, to_dict
from .model import VAE

MODEL_FILE, OPTIMIZER_FILE = "model.safetensors", "optimizer.safetensors"
JSON_FILES = ("config.json", "history.json", "metrics.json", "state.json")
RUN_FILES = (MODEL_FILE, OPTIMIZER_FILE, *JSON_FILES)
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".tar")
MAX_JSON_BYTES = 64 * 2**20
MAX_JSON_DEPTH = 32
MAX_TENSOR_BYTES = 2 * 2**30
MAX_ZIP_BYTES = 512 * 2**20


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
        files[name] = json.dumps(obj, allow_nan=False, default=float).encode()
    staging = Path(tempfile.mkdtemp(dir=run_dir.parent, prefix=f".{run_dir.name}.new-"))
    try:
        staging.chmod(0o755)
        for name, data in files.items():
            _write_atomic(staging / name, data)
        _swap_in(staging, run_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return run_dir


def _swap_in(staging: Path, run_dir: Path) -> None:
    """Replace run_dir by staging; the old folder is kept as .NAME.old-* until the new one is in place."""
    if not run_dir.exists():
        os.rename(staging, run_dir)
        return
    old = Path(tempfile.mkdtemp(dir=run_dir.parent, prefix=f".{run_dir.name}.old-"))
    os.rmdir(old)
    os.rename(run_dir, old)
    os.rename(staging, run_dir)  # a crash between the renames is repaired by recover_runs
    shutil.rmtree(old, ignore_errors=True)


def recover_runs(root: str | Path) -> None:
    """Put back a run whose save was interrupted between its two renames; drop stale staging folders."""
    root = Path(root)
    if not root.is_dir():
        return
    for leftover in root.glob(".*.old-*"):
        target = root / leftover.name[1:].rsplit(".old-", 1)[0]
        if not target.exists() and (leftover / MODEL_FILE).exists():
            os.rename(leftover, target)
        else:
            shutil.rmtree(leftover, ignore_errors=True)
    for staging in root.glob(".*.new-*"):
        if time.time() - staging.stat().st_mtime > 3600:
            shutil.rmtree(staging, ignore_errors=True)


# --------------------------------------------------------------------------- loading


def _json_depth(obj: Any, depth: int = 0) -> int:
    if depth > MAX_JSON_DEPTH:
        return depth
    if isinstance(obj, dict):
        return max([_json_depth(v, depth + 1) for v in obj.values()], default=depth + 1)
    if isinstance(obj, list):
        return max([_json_depth(v, depth + 1) for v in obj], default=depth + 1)
    return depth


def read_json(path: Path, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a small, shallow JSON file or raise ValueError naming it."""
    if not path.is_file():
        raise ValueError(f"{path.name}: missing from run folder {path.parent.name!r}")
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{path.name}: {size} bytes is larger than the {max_bytes}-byte limit")
    text = path.read_bytes()
    if text.count(b"[") + text.count(b"{") > 0 and _bracket_depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"{path.name}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{path.name}: not valid JSON ({exc})") from None


def _bracket_depth(text: bytes) -> int:
    """Maximum nesting of [ and { (a cheap pre-check so json.loads never recurses deeply); ignores strings."""
    depth = best = 0
    in_string = escaped = False
    for ch in text.decode("utf-8", errors="replace"):
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth -= 1
    return best


def _refuse_pickles(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ValueError(f"{path.name}: pickle checkpoints ({path.suffix}) are never loaded, because unpickling can run "
                         "arbitrary code; only safetensors + JSON runs are accepted")


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise ValueError(f"{path.name}: missing from run folder {path.parent.name!r}")
    if path.stat().st_size > MAX_TENSOR_BYTES:
        raise ValueError(f"{path.name}: larger than the {MAX_TENSOR_BYTES}-byte limit")
    try:
        return st_load(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        raise ValueError(f"{path.name}: not a valid safetensors file ({exc})") from None


def _check_weights(weights: dict[str, torch.Tensor], model: VAE, name: str) -> None:
    """Tensor names, shapes and dtypes must be exactly those of the model the config describes."""
    expected = model.state_dict()
    missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or extra:
        raise ValueError(f"{name}: tensors do not match config.json (missing: {missing[:5]}, unexpected: {extra[:5]})")
    for key, ref in expected.items():
        if weights[key].shape != ref.shape:
            raise ValueError(f"{name}: tensor {key!r} has shape {tuple(weights[key].shape)}, config.json implies "
                             f"{tuple(ref.shape)}")
        if not weights[key].is_floating_point():
            raise ValueError(f"{name}: tensor {key!r} has dtype {weights[key].dtype}, expected floating point")
        if not torch.isfinite(weights[key]).all():
            raise ValueError(f"{name}: tensor {key!r} holds NaN or inf")


def load_config(run_dir: Path) -> RunConfig:
    raw = read_json(run_dir / "config.json")
    if not isinstance(raw, dict) or "model" not in raw:
        raise ValueError("config.json: expected an object with 'model', 'train' and 'dataset'")
    try:
        return RunConfig(model=from_dict(ModelConfig, raw["model"]), train=from_dict(TrainConfig, raw.get("train", {})),
                         dataset=raw.get("dataset") if isinstance(raw.get("dataset"), dict) else {})
    except ValueError as exc:
        raise ValueError(f"config.json: {exc}") from None


def load_run(run_dir: str | Path, with_optimizer: bool = False) -> Run:
    """Load a run folder (safetensors + JSON only) and check the weights against its config."""
    run_dir = Path(run_dir)
    _refuse_pickles(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir}: not a run folder")
    if not (run_dir / MODEL_FILE).exists():
        pickles = [p.name for p in run_dir.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles:
            _refuse_pickles(run_dir / pickles[0])
    config = load_config(run_dir)
    model = VAE(config.model)
    weights = _read_tensors(run_dir / MODEL_FILE)
    _check_weights(weights, model, MODEL_FILE)
    model.load_state_dict(weights)
    model.eval()
    optional = {}
    for name, default in (("history.json", {"steps": [], "epochs": []}), ("metrics.json", {}), ("state.json", {})):
        optional[name] = read_json(run_dir / name) if (run_dir / name).exists() else default
        if not isinstance(optional[name], dict):
            raise ValueError(f"{name}: expected a JSON object")
    opt = _read_tensors(run_dir / OPTIMIZER_FILE) if with_optimizer and (run_dir / OPTIMIZER_FILE).exists() else None
    return Run(path=run_dir, config=config, model=model, history=optional["history.json"],
               metrics=optional["metrics.json"], state=optional["state.json"], optimizer_tensors=opt)


# --------------------------------------------------------------------------- the runs folder


def default_runs_root() -> Path:
    return Path(os.environ.get("VAE_RUNS_DIR", "runs"))


def sanitize_name(name: str) -> str:
    """A safe folder name: letters, digits, '-', '_' and '.', no leading dot, at most 64 characters."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name)).strip(".-_")[:64]
    if not clean:
        raise ValueError(f"run name {name!r} has no usable characters (letters, digits, '-', '_', '.')")
    return clean


def resolve_run(root: str | Path, name: str) -> Path:
    """The folder of run `name` inside root; refuses anything that would leave root (../, absolute, symlinks)."""
    root = Path(root).resolve()
    if name != sanitize_name(name):
        raise ValueError(f"run name {name!r} is not allowed (use letters, digits, '-', '_', '.')")
    path = root / name
    if path.is_symlink() or path.resolve().parent != root:
        raise ValueError(f"run {name!r} is outside the runs folder")
    return path


def unique_run_name(root: str | Path, base: str) -> str:
    base = sanitize_name(base)
    name, i = base, 2
    while (Path(root) / name).exists():
        name, i = f"{base}-{i}", i + 1
    return name


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


def list_runs(root: str | Path | None = None) -> list[RunSummary]:
    """Every loadable run in root, newest first (folders with broken configs are skipped)."""
    root = Path(root or default_runs_root())
    recover_runs(root)
    rows = []
    for path in sorted(root.glob("*")) if root.is_dir() else []:
        if path.name.startswith(".") or path.is_symlink() or not (path / MODEL_FILE).is_file():
            continue
        try:
            config, metrics = load_config(path), read_json(path / "metrics.json") if (path / "metrics.json").exists() else {}
        except ValueError:
            continue
        rows.append(RunSummary(
            name=path.name, path=path, dataset=str(config.dataset.get("name", "?")), arch=config.model.arch,
            latent_dim=config.model.latent_dim, epochs=int(metrics.get("epochs_done", 0)),
            val_neg_elbo=metrics.get("val_neg_elbo"), active_units=metrics.get("active_units"),
            modified=(path / MODEL_FILE).stat().st_mtime))
    return sorted(rows, key=lambda r: r.modified, reverse=True)


def rename_run(root: str | Path, old: str, new: str) -> Path:
    src, dst = resolve_run(root, old), resolve_run(root, sanitize_name(new))
    if dst.exists():
        raise ValueError(f"a run named {dst.name!r} already exists")
    os.rename(src, dst)
    return dst


def delete_run(root: str | Path, name: str) -> None:
    path = resolve_run(root, name)
    if not (path / MODEL_FILE).exists() and not (path / "config.json").exists():
        raise ValueError(f"{name!r} is not a run folder")
    shutil.rmtree(path)


def export_zip(run_dir: str | Path) -> bytes:
    """The run's safetensors + JSON files as a zip archive (in memory)."""
    run_dir = Path(run_dir)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in RUN_FILES:
            if (run_dir / name).is_file():
                zf.write(run_dir / name, f"{run_dir.name}/{name}")
    return buf.getvalue()


def import_zip(data: bytes, root: str | Path, name: str | None = None, zip_name: str = "upload.zip") -> Path:
    """Unpack a run zip into root after validating every member and loading it in a scratch folder."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise ValueError(f"{zip_name}: not a zip archive") from None
    members = {}
    for info in zf.infolist():
        if info.is_dir() or Path(info.filename).name.startswith((".", "__MACOSX")) or "__MACOSX" in info.filename:
            continue
        base = Path(info.filename).name
        _refuse_pickles(Path(f"{zip_name}:{base}"))
        if base not in RUN_FILES:
            raise ValueError(f"{zip_name}: unexpected file {info.filename!r} (a run holds only {', '.join(RUN_FILES)})")
        if base in members:
            raise ValueError(f"{zip_name}: {base} appears twice")
        members[base] = info
    if MODEL_FILE not in members or "config.json" not in members:
        raise ValueError(f"{zip_name}: a run zip needs {MODEL_FILE} and config.json")
    if sum(i.file_size for i in members.values()) > MAX_ZIP_BYTES:
        raise ValueError(f"{zip_name}: unpacks to more than {MAX_ZIP_BYTES} bytes")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(members[MODEL_FILE].filename).parent.name or Path(zip_name).stem
    final = resolve_run(root, unique_run_name(root, name or folder))
    scratch = Path(tempfile.mkdtemp(dir=root, prefix=f".{final.name}.new-"))
    try:
        for base, info in members.items():
            with zf.open(info) as src:
                data_bytes = src.read(info.file_size + 1)
            if len(data_bytes) != info.file_size:
                raise ValueError(f"{zip_name}:{base}: size differs from the archive's header")
            (scratch / base).write_bytes(data_bytes)
        try:
            load_run(scratch)
        except ValueError as exc:
            raise ValueError(f"{zip_name}: {exc}") from None
        os.rename(scratch, final)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return final
