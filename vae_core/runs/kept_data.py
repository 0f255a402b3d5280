"""A run's kept copy of its training data: content-addressed, shared by the runs that trained on the same images,
checked like every run file when it is read back.

A run trained on files (an upload, `--data PATH`) would lose its images when the files go (an upload pruned, another
session's upload, a restarted server, a copied runs folder). So the run keeps them: the decoded images (uint8 when
that is exact, else float32), labels and class names in one safetensors file, `<runs>/.data/<sha256>.safetensors`,
named by the SHA-256 of its bytes; the run's config.json names it (`dataset.kept_data`). Runs on the same data share
one file; it goes when no run names it any more (release). A copy over the cap (env VAE_KEEP_DATA_BYTES, default
256 MiB; 0 keeps none) is not written and the run says why instead (`dataset.kept_note`). Sources rebuilt from their
parameters (bundled digits, generated shapes) need no copy.

Read back, nothing is trusted: the bytes must hash to the name, the tensors be exactly images (+ labels) of a known
dtype and a sane shape within the data byte limit, the metadata plain JSON; every refusal names the file.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Iterable

import numpy as np
from safetensors.numpy import load as st_load, save as st_save

from ..data import Dataset, load_source, source_entry
from ..data.checks import byte_limit, row_slices
from .checks import load_config
from .files import read_file, write_atomic

KEPT_KEY = "kept_data"  # in a source dict and config.json's dataset: the SHA-256 of the run's kept copy
NOTE_KEY = "kept_note"  # in config.json's dataset: why no copy was kept
FOLDER = ".data"  # in the runs folder, beside the runs (hidden: list_runs skips it)
SUFFIX = ".safetensors"
DEFAULT_CAP = 256 * 2**20
META_KEY = "kept"  # the one metadata entry (one key: its bytes, hence its hash, never depend on an order)
MAX_CLASSES = 1_000_000
_DIGEST = re.compile(r"[0-9a-f]{64}")


def keep_cap() -> int:
    """The largest copy kept, in bytes (env VAE_KEEP_DATA_BYTES, default 256 MiB; 0 keeps none)."""
    return int(float(os.environ.get("VAE_KEEP_DATA_BYTES") or DEFAULT_CAP))


def store(runs_root: str | Path) -> Path:
    """The folder of kept copies of a runs folder."""
    return Path(runs_root) / FOLDER


def kept_path(runs_root: str | Path, digest: str) -> Path:
    """Where the copy named digest lives; a name that is not a SHA-256 in hex is refused (no path can be smuggled)."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise ValueError(f"config.json: dataset.{KEPT_KEY} must be a SHA-256 in hex, got {str(digest)[:80]!r}")
    return store(runs_root) / f"{digest}{SUFFIX}"


def kept_digest(source: object) -> str | None:
    """The digest a source dict (or a run's config.json dataset) names, or None."""
    return source.get(KEPT_KEY) if isinstance(source, dict) and source.get(KEPT_KEY) is not None else None


# --------------------------------------------------------------------------- writing


def _stored_images(dataset: Dataset) -> np.ndarray:
    """The images as stored: uint8 when images/255 gives back every pixel exactly (as Dataset.batch computes it),
    else float32. Checked in chunks of ~1M values (temporaries that stay in cache)."""
    images = dataset.images
    if images.dtype == np.uint8:
        return np.ascontiguousarray(images)
    levels = np.arange(256, dtype=np.float32) / 255  # Dataset.batch's value of each level, bit for bit
    out = np.empty(images.shape, np.uint8)
    step = max(1, (1 << 20) // max(1, int(np.prod(images.shape[1:]))))
    for start in range(0, len(images), step):
        x = np.asarray(images[start:start + step], np.float32)
        scaled = np.multiply(x, 255, dtype=np.float32)
        np.clip(np.rint(scaled, out=scaled), 0, 255, out=scaled)
        u = out[start:start + step]
        u[...] = scaled
        if not np.array_equal(levels[u], x):
            return np.ascontiguousarray(images, np.float32)
    return out


def encode(dataset: Dataset) -> bytes:
    """A dataset's images, labels, class names and name as the bytes of a kept copy."""
    tensors = {"images": _stored_images(dataset)}
    if dataset.labels is not None:
        tensors["labels"] = np.ascontiguousarray(dataset.labels, np.int64)
    meta = {"name": dataset.name, "class_names": dataset.class_names}
    return st_save(tensors, metadata={META_KEY: json.dumps(meta, sort_keys=True)})


def _reads_files(source: object) -> bool:
    """Whether a source's data would be lost with its files (a source rebuilt from its parameters would not)."""
    try:
        return isinstance(source, dict) and source_entry(source.get("kind")).reads_files
    except ValueError:
        return False


def keep(dataset: Dataset, runs_root: str | Path, cap: int | None = None) -> Dataset:
    """The dataset as a job saving into runs_root should train on it: its source names its kept copy (written now,
    or already there) or, over the cap, says why none was kept. A source rebuilt from its parameters, or one whose
    copy runs_root holds already, comes back unchanged."""
    digest = kept_digest(dataset.source)
    if digest is not None:  # a run's kept copy (resumed): written again only where runs_root lacks it
        if kept_path(runs_root, digest).is_file():
            return dataset
    elif not _reads_files(dataset.source):
        return dataset
    cap = keep_cap() if cap is None else cap
    pixels = int(np.prod(dataset.images.shape))
    if pixels > cap:  # not even one byte a pixel fits: no need to look at the values
        return _with(dataset, {NOTE_KEY: _over_cap(pixels, cap)})
    data = encode(dataset)
    if len(data) > cap:
        return _with(dataset, {NOTE_KEY: _over_cap(len(data), cap)})
    digest = hashlib.sha256(data).hexdigest()
    path = kept_path(runs_root, digest)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.stat().st_size != len(data):
            write_atomic(path, data)
    except OSError as exc:  # a full disk costs the copy, never the training
        return _with(dataset, {NOTE_KEY: f"not kept: it could not be written ({exc.strerror or exc})"})
    return _with(dataset, {KEPT_KEY: digest})


def _over_cap(nbytes: int, cap: int) -> str:
    return (f"not kept: its images take {nbytes / 2**20:,.1f} MB, over the {cap / 2**20:,.0f} MB a run keeps "
            "(VAE_KEEP_DATA_BYTES)")


def _with(dataset: Dataset, entries: dict) -> Dataset:
    """The same arrays under a source that says what was kept (the caller's dataset and its source stay as they
    were)."""
    source = {k: v for k, v in dataset.source.items() if k not in (KEPT_KEY, NOTE_KEY)}
    return Dataset(dataset.images, dataset.labels, dataset.class_names, dataset.factors, dataset.factor_names,
                   dataset.name, source | entries, dataset.note)


def describe_kept(source: dict, runs_root: str | Path) -> str:
    """One line on what a run keeps of its training data ("" when it needs no copy): the command line prints it, the
    Runs page shows it."""
    digest = kept_digest(source)
    if digest is not None:
        path = kept_path(runs_root, digest)
        where = f"{Path(runs_root).name}/{FOLDER}/{digest[:12]}…{SUFFIX}"
        if not path.is_file():
            return f"training data: its kept copy {where} is missing"
        return f"training data kept with the run: {path.stat().st_size / 2**20:,.1f} MB in {where}"
    return f"training data {source[NOTE_KEY]}" if source.get(NOTE_KEY) else ""


# --------------------------------------------------------------------------- reading


def load_kept(runs_root: str | Path, digest: str, shape: tuple[int, ...] | None = None,
              source: dict | None = None) -> Dataset:
    """The kept copy named digest, checked (hash, tensors, dtypes, shapes, size, metadata); shape, when given, is
    the image shape the run expects. Its source is `source` (default {kept_data: digest})."""
    path = kept_path(runs_root, digest)
    where = f"{Path(runs_root).name}/{FOLDER}/{path.name}"
    if not os.path.lexists(path):
        raise ValueError(f"{where}: the run's kept copy of its training data is missing")
    try:
        data = read_file(path, byte_limit(None))
    except ValueError as exc:
        raise ValueError(f"{FOLDER}/{exc}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise ValueError(f"{where}: its SHA-256 is {actual[:16]}…, not the one it is named by: the file was changed "
                         "and is not used")
    return decode(data, where, shape, source or {KEPT_KEY: digest})


def decode(data: bytes, where: str, shape: tuple[int, ...] | None, source: dict) -> Dataset:
    """A kept copy's bytes as a Dataset, every tensor and the metadata checked; errors name `where`."""
    try:
        tensors = st_load(data)
    except Exception as exc:  # SafetensorError and friends: the bytes are not a safetensors file
        raise ValueError(f"{where}: not a valid safetensors file ({exc})") from None
    if set(tensors) not in ({"images"}, {"images", "labels"}):
        raise ValueError(f"{where}: expected the tensors images (and labels), got {sorted(tensors)[:5]}")
    images, labels = tensors["images"], tensors.get("labels")
    if images.dtype not in (np.uint8, np.float32) or images.ndim != 4 or min(images.shape) < 1:
        raise ValueError(f"{where}: images must be uint8 or float32 of shape (N, C, H, W), got {images.dtype} "
                         f"{images.shape}")
    if shape is not None and tuple(images.shape[1:]) != tuple(shape):
        raise ValueError(f"{where}: holds {'×'.join(map(str, images.shape[1:]))} images, the run expects "
                         f"{'×'.join(map(str, shape))}")
    if images.dtype == np.float32 and not all(np.isfinite(images[r]).all() and images[r].min() >= 0
                                              and images[r].max() <= 1 for r in row_slices(images)):
        raise ValueError(f"{where}: float32 images must be finite and in [0, 1]")
    meta = _metadata(data, where)
    names = meta["class_names"]
    if labels is not None:
        if labels.dtype != np.int64 or labels.shape != images.shape[:1]:
            raise ValueError(f"{where}: labels must be int64 of shape ({images.shape[0]},), got {labels.dtype} "
                             f"{labels.shape}")
        if labels.min() < 0 or (names is not None and labels.max() >= len(names)):
            raise ValueError(f"{where}: labels must be class indices in 0..{len(names or ()) - 1}")
    return Dataset(images, labels, names, name=meta["name"], source=dict(source))


def _metadata(data: bytes, where: str) -> dict:
    """The copy's name and class names from its safetensors header (already parsed once by safetensors)."""
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + size])
    try:
        meta = json.loads((header.get("__metadata__") or {})[META_KEY])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{where}: its metadata has no valid {META_KEY!r} entry") from None
    names = meta.get("class_names") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or len(meta["name"]) > 256 or not (
            names is None or isinstance(names, list) and len(names) <= MAX_CLASSES
            and all(isinstance(n, str) and len(n) <= 1024 for n in names)):
        raise ValueError(f"{where}: its metadata must give a name and a list of class names (or null)")
    return {"name": meta["name"], "class_names": names}


def load_dataset(source: str | os.PathLike | dict, runs_root: str | Path) -> Dataset:
    """A source's dataset (data.load_source), or the kept copy in runs_root that the source names."""
    digest = kept_digest(source)
    if digest is not None:
        return load_kept(runs_root, digest, source=source)
    if isinstance(source, dict) and NOTE_KEY in source:
        source = {k: v for k, v in source.items() if k != NOTE_KEY}
    return load_source(source)


# --------------------------------------------------------------------------- sharing and removing


def named_digests(runs_root: str | Path) -> set[str]:
    """The copies the runs in runs_root name (runs with an unreadable config name none)."""
    root, names = Path(runs_root), set()
    for path in root.iterdir() if root.is_dir() else ():
        if path.name.startswith(".") or path.is_symlink() or not path.is_dir():
            continue
        try:
            digest = kept_digest(load_config(path).dataset)
        except (ValueError, OSError):
            continue
        if digest is not None:
            names.add(digest)
    return names


def release(runs_root: str | Path, in_use: Iterable[str] = ()) -> list[Path]:
    """Remove the kept copies that no run in runs_root names and no digest of in_use (a job still training on its
    data, before its first save) names; the removed files."""
    folder, keep_these = store(runs_root), named_digests(runs_root) | set(in_use)
    removed = []
    for path in folder.glob(f"*{SUFFIX}") if folder.is_dir() else ():
        if path.stem not in keep_these and _DIGEST.fullmatch(path.stem) and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
