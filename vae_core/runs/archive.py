"""A run as a zip archive: export a run folder, import an uploaded zip (every member checked before anything lands).

A run that keeps a copy of its training data (kept_data.py) carries it in its zip as data.safetensors; importing
checks it like the run's own files (its hash against the name config.json gives, its tensors against the model's image
shape) and puts it in the runs folder's store of kept copies. An imported run names only a copy its zip carried."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from ..config import RunConfig
from .budget import ENCODE_BATCH, check_budget, price
from .checks import MAX_JSON_BYTES, MAX_TENSOR_BYTES, MODEL_FILE, RUN_FILES, load_config, read_json, refuse_pickles
from .files import move_in, read_file, write_atomic
from .folder import load_run
from .kept_data import KEPT_KEY, NOTE_KEY, decode, kept_digest, kept_path
from .names import sanitize_name

MAX_ZIP_BYTES = 512 * 2**20  # the upload itself, and the sum of its members' sizes
MAX_ZIP_MEMBERS = 256
DATA_PATH_KEYS = ("path", "labels_path")
KEPT_FILE = "data.safetensors"  # a run zip's copy of the run's training data
ZIP_FILES = (*RUN_FILES, KEPT_FILE)
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, OSError,
               zlib.error, ValueError)


def export_zip(run_dir: str | Path) -> bytes:
    """The run's safetensors + JSON files as a zip archive (in memory), with its kept training data when it has an
    intact copy that fits in a zip this app imports."""
    run_dir = Path(run_dir)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        total = 0
        for name in RUN_FILES:
            if os.path.lexists(run_dir / name):
                limit = MAX_TENSOR_BYTES if name.endswith(".safetensors") else MAX_JSON_BYTES
                data = read_file(run_dir / name, limit)
                total += len(data)
                zf.writestr(f"{run_dir.name}/{name}", data)
        kept = _kept_bytes(run_dir, MAX_ZIP_BYTES - total)
        if kept is not None:
            zf.writestr(f"{run_dir.name}/{KEPT_FILE}", kept)
    return buf.getvalue()


def _kept_bytes(run_dir: Path, room: int) -> bytes | None:
    """The run's kept copy's bytes when it names one that is there, intact, and at most room bytes; else None."""
    try:
        digest = kept_digest(load_config(run_dir).dataset)
        if digest is None:
            return None
        data = read_file(kept_path(run_dir.parent, digest), room)
    except (ValueError, OSError):
        return None
    return data if hashlib.sha256(data).hexdigest() == digest else None


# --------------------------------------------------------------------------- reading an uploaded zip


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
    refuse_pickles(Path(f"{zip_name}:{path.name}"))
    if path.name not in ZIP_FILES:
        raise ValueError(f"{zip_name}: unexpected file {info.filename!r} (a run zip holds only {', '.join(ZIP_FILES)})")
    return path


def _zip_members(zf: zipfile.ZipFile, zip_name: str) -> tuple[dict[str, zipfile.ZipInfo], str]:
    """The run files of an archive by name, and the folder they are in ('' at the top)."""
    infos = zf.infolist()
    if len(infos) > MAX_ZIP_MEMBERS:
        raise ValueError(f"{zip_name}: {len(infos)} entries; a run zip holds at most {len(ZIP_FILES)} files")
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


# --------------------------------------------------------------------------- importing


def _confined_config(run_dir: Path, config: RunConfig, root: Path) -> dict | None:
    """config.json without data paths outside root (an upload must not make the server read files); None if none."""
    dataset = config.dataset
    paths = [dataset[k] for k in DATA_PATH_KEYS if isinstance(dataset.get(k), str)]
    if dataset.get("kind") != "path" and not paths:
        return None
    inside = all(Path(p).is_absolute() and Path(p).resolve().is_relative_to(root.resolve()) for p in paths)
    if inside and paths:
        return None
    raw = read_json(run_dir / "config.json")
    raw["dataset"] = {k: v for k, v in dataset.items() if k not in DATA_PATH_KEYS} | {
        "kind": "imported-path", "original_path": dataset.get("path")}  # load_source refuses this kind: never read
    return raw


def _kept_config(raw: dict, data: bytes | None, config: RunConfig, root: Path, zip_name: str) -> dict:
    """config.json's object once the zip's kept copy is checked and stored: the copy must hash to the name config.json
    gives and hold the model's images (else the import is refused); a name without its copy is dropped, with a
    note, so an imported run never names a copy it did not bring."""
    digest = kept_digest(config.dataset)
    if data is None:
        if digest is None:
            return raw
        dataset = {k: v for k, v in raw["dataset"].items() if k != KEPT_KEY}
        return raw | {"dataset": dataset | {NOTE_KEY: "not kept: the run's zip did not carry its training data"}}
    where = f"{zip_name}:{KEPT_FILE}"
    if digest is None:
        raise ValueError(f"{where}: config.json names no kept training data (dataset.{KEPT_KEY})")
    path = kept_path(root, digest)  # refuses a malformed digest
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise ValueError(f"{where}: its SHA-256 is {actual[:16]}…, not dataset.{KEPT_KEY} of config.json: the file "
                         "was changed")
    decode(data, where, tuple(config.model.input_shape), {})
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.stat().st_size != len(data):
        write_atomic(path, data)
    return raw


def _usable(name: str) -> str | None:
    try:
        return sanitize_name(name)
    except ValueError:
        return None


def unpacked_bytes(data: bytes) -> int:
    """The bytes a run zip takes once unpacked (its members' sizes, as its directory states them; the zip's own size
    when it cannot be read, which import_zip then refuses): what an import needs room for, not the compressed size."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            return max(len(data), sum(info.file_size for info in zf.infolist()))
    except _ZIP_ERRORS:
        return len(data)


def import_zip(data: bytes, root: str | Path, name: str | None = None, zip_name: str = "upload.zip") -> Path:
    """Unpack a run zip into root after validating every member, pricing its least work (one batch of images encoded,
    budget.py) and loading it in a scratch folder."""
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
            check_budget(price(load_config(scratch).model, ENCODE_BATCH), "encoding one batch of images with this run")
            run = load_run(scratch, with_optimizer=True)
        except ValueError as exc:
            raise ValueError(f"{zip_name}: {exc}") from None
        confined = _confined_config(scratch, run.config, root)
        raw = confined if confined is not None else read_json(scratch / "config.json")
        kept = scratch / KEPT_FILE
        data = kept.read_bytes() if kept.exists() else None
        kept.unlink(missing_ok=True)  # the copy goes to the store, not into the run folder
        try:
            updated = _kept_config(raw, data, run.config, root, zip_name)
        except ValueError as exc:
            raise ValueError(exc if str(exc).startswith(zip_name) else f"{zip_name}: {exc}") from None
        if confined is not None or updated is not raw:
            write_atomic(scratch / "config.json", json.dumps(updated, allow_nan=False).encode())
        return move_in(scratch, root, base)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
