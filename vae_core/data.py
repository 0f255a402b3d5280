"""Datasets: bundled digits, procedural shapes, and user files (IDX, .npy/.npz, folders or zips of images).

Every loader checks sizes before it allocates and raises ValueError naming the file and the problem. The file-format
readers live in data_files.py, which imports the Dataset and the shared checks from here; this module re-exports them.
"""
from __future__ import annotations

import contextlib
import importlib.util
import lzma
import math
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

DEFAULT_MAX_BYTES = 2 * 1024**3  # of decoded float32 images; env VAE_MAX_DATA_BYTES and max_bytes= override it
MMAP_THRESHOLD = 256 * 1024**2  # with mmap=None, uint8/float32 .npy files larger than this are memory-mapped
MAX_CLASSES = 10_000  # labels are class indices 0..MAX_CLASSES-1
ZIP_MAX_RATIO = 200  # zip members inflating more than this are refused as bombs...
ZIP_RATIO_FLOOR = 1 << 20  # ...once over 1 MiB: small blank images legitimately compress 200x
GZIP_MAX_RATIO = 1032  # deflate cannot inflate more than ~1032x, so a gzip claiming more is lying
SHAPE_NAMES = ["square", "ellipse", "triangle", "heart"]
SHAPE_FACTORS = ["shape", "scale", "rotation", "pos_x", "pos_y"]
_FILE_EXPORTS = {"load_idx", "find_idx_labels", "load_array", "load_images", "IMAGE_KEYS", "LABEL_KEYS",
                 "IMAGE_SUFFIXES"}  # defined in data_files, re-exported here by __getattr__
_READ_ERRORS = (OSError, EOFError, zlib.error, zipfile.BadZipFile, struct.error, lzma.LZMAError,
                NotImplementedError, RuntimeError)  # what gzip/zipfile raise on corrupt input


@dataclass(eq=False)
class Dataset:
    """Images (N, C, H, W) in [0, 1] with optional labels and generating factors."""

    images: np.ndarray  # float32 (N, C, H, W); a memory-mapped .npy stays a uint8/float view of the file
    labels: np.ndarray | None = None  # int64 (N,)
    class_names: list[str] | None = None  # class_names[label]
    factors: np.ndarray | None = None  # float32 (N, F) ground-truth generating factors
    factor_names: list[str] | None = None
    name: str = "dataset"
    source: dict = field(default_factory=dict)  # load_source(source) rebuilds this dataset

    def __post_init__(self) -> None:
        if self.images.ndim != 4:
            raise ValueError(f"{self.name}: images must be (N, C, H, W), got shape {self.images.shape}")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError(f"{self.name}: {len(self.labels)} labels for {len(self.images)} images")

    @property
    def n(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    def batch(self, idx: np.ndarray) -> np.ndarray:
        """Rows idx as a fresh contiguous float32 (B, C, H, W) array in [0, 1]."""
        rows = self.images[np.asarray(idx, dtype=np.int64)]  # fancy indexing: always a copy
        out = np.ascontiguousarray(rows, dtype=np.float32)
        if rows.dtype == np.uint8:
            out /= 255
        return out

    def subset(self, idx: np.ndarray) -> Dataset:
        """The rows idx, materialised in memory; source still describes the whole dataset."""
        idx = np.asarray(idx, dtype=np.int64)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return Dataset(self.batch(idx), pick(self.labels), self.class_names, pick(self.factors),
                       self.factor_names, self.name, dict(self.source))

    def describe(self) -> dict:
        """A JSON-able summary for the UI: size, shape, classes and value range."""
        lo, hi = np.inf, -np.inf
        for s in _row_slices(self.images):
            rows = self.batch(np.arange(self.n)[s])
            lo, hi = min(lo, float(rows.min())), max(hi, float(rows.max()))
        counts = {}
        if self.labels is not None:
            names = self.class_names or [str(i) for i in range(int(self.labels.max()) + 1)]
            counts = dict(zip(names, np.bincount(self.labels, minlength=len(names)).tolist()))
        return {"name": self.name, "n": self.n, "shape": self.shape, "n_classes": len(counts),
                "class_counts": counts, "min": lo, "max": hi}


# ---------------------------------------------------------------- built-in datasets

def load_digits() -> Dataset:
    """scikit-learn's bundled 1797 8x8 handwritten digits, scaled from 0..16 to [0, 1].

    Read from the CSV that scikit-learn ships (what `sklearn.datasets.load_digits` reads) without importing
    scikit-learn: its import (scipy included) took ~1.5 s of the app's cold start for an 8 KB file."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("digits: scikit-learn is not installed (pip install -r requirements.txt)")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)  # (1797, 65): 64 pixels, then the label
    images = (table[:, :-1] / 16.0).reshape(-1, 1, 8, 8)
    return Dataset(images, table[:, -1].astype(np.int64), [str(i) for i in range(10)],
                   name="digits", source={"kind": "digits"})


def make_shapes(n: int = 20000, size: int = 32, seed: int = 0) -> Dataset:
    """dSprites-style binary images: a shape at a seeded scale, rotation and position."""
    if n < 1 or size < 4:
        raise ValueError(f"shapes: need n >= 1 and size >= 4, got n={n}, size={size}")
    _check_size("shapes", n * size * size * 4, _limit(None))
    rng = np.random.default_rng(seed)
    shape = rng.integers(0, len(SHAPE_NAMES), n)
    scale, rotation = rng.uniform(0.5, 1.0, n), rng.uniform(0.0, 2 * np.pi, n)
    factors = np.column_stack([shape, scale, rotation, rng.uniform(0.0, 1.0, (n, 2))]).astype(np.float32)
    images = np.empty((n, 1, size, size), np.float32)
    for start in range(0, n, 1024):
        images[start:start + 1024, 0] = _draw_shapes(factors[start:start + 1024], size)
    return Dataset(images, shape.astype(np.int64), list(SHAPE_NAMES), factors, list(SHAPE_FACTORS),
                   "shapes", {"kind": "shapes", "n": n, "size": size, "seed": seed})


def _draw_shapes(factors: np.ndarray, size: int) -> np.ndarray:
    """Rasterise rows of factors (B, 5) to (B, size, size) by testing every pixel centre at once."""
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    col = lambda j: factors[:, j, None, None]  # noqa: E731  (B, 1, 1)
    radius = 0.2 * col(1)  # every shape lies within 1.2 radii, so centres in [0.25, 0.75] keep it in frame
    dx, dy = grid[None, None, :] - (0.25 + 0.5 * col(3)), grid[None, :, None] - (0.25 + 0.5 * col(4))
    cos, sin = np.cos(col(2)), np.sin(col(2))
    u, v = (cos * dx + sin * dy) / radius, (cos * dy - sin * dx) / radius  # (B, H, W) shape coordinates
    inside = np.zeros(u.shape, bool)
    for k, test in enumerate(_SHAPE_TESTS):
        rows = factors[:, 0] == k
        inside[rows] = test(u[rows], v[rows])
    return inside.astype(np.float32)


def _heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    x, y = 1.1 * u, 1.1 * (0.15 - v)  # (x^2 + y^2 - 1)^3 <= x^2 y^3, the classic heart curve, lobes up
    return (x * x + y * y - 1) ** 3 <= x * x * y**3


_SHAPE_TESTS = (  # is (u, v) inside the shape? v points down the image; each shape lies within radius 1.2
    lambda u, v: np.maximum(np.abs(u), np.abs(v)) <= 0.84,  # square
    lambda u, v: (u / 1.2) ** 2 + (v / 0.7) ** 2 <= 1,  # ellipse
    lambda u, v: (v <= 0.6) & (v >= np.sqrt(3) * np.abs(u) - 1.2),  # equilateral triangle, apex up
    _heart,
)


# ---------------------------------------------------------------- shared checks

def _limit(max_bytes: int | None) -> int:
    """max_bytes, else $VAE_MAX_DATA_BYTES, else DEFAULT_MAX_BYTES."""
    env = os.environ.get("VAE_MAX_DATA_BYTES", str(DEFAULT_MAX_BYTES))
    if max_bytes is None and not env.strip().isdigit():
        raise ValueError(f"VAE_MAX_DATA_BYTES must be a whole number of bytes, got {env!r}")
    return int(env if max_bytes is None else max_bytes)


def _check_size(name: str, nbytes: int, limit: int, what: str = "decoded float32 images") -> None:
    if nbytes > limit:
        raise ValueError(f"{name}: too large: {what} would take {nbytes:,} bytes, over the limit of "
                         f"{limit:,} bytes (max_bytes= or VAE_MAX_DATA_BYTES)")


@contextlib.contextmanager
def _named(name: str, errors: tuple = _READ_ERRORS) -> Iterator[None]:
    """Re-raise errors from the block as ValueError whose message starts with the file's name."""
    try:
        yield
    except ValueError as exc:
        if str(exc).startswith(name):
            raise
        raise ValueError(f"{name}: {exc}") from exc
    except errors as exc:
        raise ValueError(f"{name}: unreadable or corrupt ({type(exc).__name__}: {exc})") from exc


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path.name or path}: no such file or directory")
    return path


def _path_source(path: Path, labels_path: Path | None = None) -> dict:
    return {"kind": "path", "path": os.path.abspath(path),
            "labels_path": None if labels_path is None else os.path.abspath(labels_path)}


def _layout(shape: tuple, name: str) -> str:
    """'NHW', 'NHWC' or 'NCHW' for an image array's shape, or a clear error."""
    if len(shape) == 3:
        layout = "NHW"
    elif len(shape) == 4 and shape[3] in (1, 3, 4):
        layout = "NHWC"
    elif len(shape) == 4 and shape[1] in (1, 3):
        layout = "NCHW"
    else:
        raise ValueError(f"{name}: unsupported image array shape {tuple(shape)}; expected (N, H, W), "
                         "(N, H, W, C) with C in 1, 3, 4 (alpha dropped) or (N, C, H, W) with C in 1, 3")
    if shape[0] == 0:
        raise ValueError(f"{name}: no images (the array has 0 rows)")
    if 0 in shape:
        raise ValueError(f"{name}: empty images of shape {tuple(shape)}")
    return layout


def _nchw(x: np.ndarray, layout: str) -> np.ndarray:
    """A (N, C, H, W) view of x (no copy); an alpha channel is dropped."""
    if layout == "NHW":
        return x[:, None]
    if layout == "NCHW":
        return x
    return np.transpose(x[..., :3] if x.shape[3] == 4 else x, (0, 3, 1, 2))


def _row_slices(x: np.ndarray) -> list[slice]:
    """Slices of ~16M values along the first axis, for chunked validation and conversion."""
    rows = max(1, (1 << 24) // max(1, math.prod(x.shape[1:])))
    return [slice(start, start + rows) for start in range(0, len(x), rows)]


def _divisor(x: np.ndarray, name: str) -> float:
    """255 for 0..255 data, 1 for [0, 1] data; refuses NaN/inf and other ranges (checked in chunks)."""
    if x.dtype == np.uint8:
        return 255.0
    chunks = lambda: (np.asarray(x[s]) for s in _row_slices(x))  # noqa: E731  (re-read: x may be a memmap)
    if x.dtype.kind == "f" and not all(np.isfinite(c).all() for c in chunks()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    lo, hi = min(float(c.min()) for c in chunks()), max(float(c.max()) for c in chunks())
    if x.dtype.kind in "bf" and lo >= 0 and hi <= 1:
        return 1.0
    if lo >= 0 and hi <= 255 and (x.dtype.kind in "iu" or all((c == np.round(c)).all() for c in chunks())):
        return 255.0
    raise ValueError(f"{name}: values out of range: found min {lo:g}, max {hi:g}; expected floats in "
                     "[0, 1] or whole numbers in 0..255")


def _materialise(view: np.ndarray, divisor: float) -> np.ndarray:
    """A contiguous float32 copy of view / divisor, converted chunk by chunk."""
    out = np.empty(view.shape, np.float32)
    for s in _row_slices(view):
        out[s] = view[s]
        out[s] /= divisor
    return out


def _array_dataset(x: np.ndarray, name: str, source: dict, mmap: bool = False) -> Dataset:
    """Validate an image array and wrap it: a float32 copy, or (mmap) a lazy (N, C, H, W) view."""
    view = _nchw(x, _layout(x.shape, name))
    divisor = _divisor(view, name)
    if mmap and divisor != (255.0 if x.dtype == np.uint8 else 1.0):
        raise ValueError(f"{name}: memory-mapped arrays must be uint8 or floats in [0, 1]: rescale and "
                         "re-save it, or load it with mmap=False")
    return Dataset(view if mmap else _materialise(view, divisor), name=name, source=source)


def _labels(raw: np.ndarray, n: int, name: str) -> tuple[np.ndarray, list[str]]:
    """Validated int64 labels and their default class names "0".."K-1"."""
    raw = raw.astype(np.uint8) if raw.dtype == np.bool_ else raw
    if raw.ndim != 1 or raw.dtype.kind not in "iuf":
        raise ValueError(f"{name}: labels must be a 1-D numeric array, got {raw.dtype} of shape {raw.shape}")
    if len(raw) != n:
        raise ValueError(f"{name}: label count mismatch: {len(raw)} labels for {n} images")
    if not (np.isfinite(raw).all() and (raw == np.round(raw)).all()):
        raise ValueError(f"{name}: labels must be whole numbers (found NaN, inf or fractions)")
    if raw.min() < 0 or raw.max() >= MAX_CLASSES:
        raise ValueError(f"{name}: labels must be class indices in 0..{MAX_CLASSES - 1}, "
                         f"found {raw.min()}..{raw.max()}")
    labels = raw.astype(np.int64)
    return labels, [str(i) for i in range(int(labels.max()) + 1)]


def _sniff(path: Path) -> str:
    """'npy', 'zip', 'gzip', 'idx' or 'unknown' from a file's first bytes."""
    with open(path, "rb") as f:
        head = f.read(6)
    kinds = {b"\x93NUMPY": "npy", b"PK": "zip", b"\x1f\x8b": "gzip", b"\0\0": "idx"}
    return next((kind for magic, kind in kinds.items() if head.startswith(magic)), "unknown")


# ---------------------------------------------------------------- dispatch

def load_path(path: str | os.PathLike, labels_path: str | os.PathLike | None = None,
              max_bytes: int | None = None) -> Dataset:
    """Load a folder, .zip, .npy/.npz or IDX (optionally gzipped) file, chosen by type and magic bytes."""
    from vae_core import data_files  # imported here, not at the top: data_files imports this module

    path = _existing(path)
    kind = "dir" if path.is_dir() else _sniff(path)
    if labels_path is not None and kind not in ("idx", "gzip"):
        raise ValueError(f"{path.name}: labels_path is only used with IDX files")
    if kind == "dir" or (kind == "zip" and path.suffix.lower() != ".npz"):
        return data_files.load_images(path, max_bytes=max_bytes)
    if kind in ("npy", "zip"):
        return data_files.load_array(path, max_bytes=max_bytes)
    if kind in ("idx", "gzip"):
        labels_path = data_files.find_idx_labels(path) if labels_path is None else labels_path
        return data_files.load_idx(path, labels_path, max_bytes)
    raise ValueError(f"{path.name}: unrecognised data file: expected a folder or .zip of images, a .npy/.npz "
                     "array, or an IDX file (optionally gzipped)")


def load_source(source: str | dict) -> Dataset:
    """Rebuild a dataset from "digits", "shapes", a path, or a Dataset.source dict."""
    source = os.fspath(source) if isinstance(source, os.PathLike) else source
    if isinstance(source, str):
        source = {"kind": source} if source in ("digits", "shapes") else {"kind": "path", "path": source}
    kind = source.get("kind") if isinstance(source, dict) else None
    args = {k: v for k, v in source.items() if k != "kind"} if kind else {}
    if kind == "digits" and not args:
        return load_digits()
    if kind == "shapes" and set(args) <= {"n", "size", "seed"}:
        return make_shapes(**{k: int(v) for k, v in args.items()})
    if kind == "path" and "path" in args and set(args) <= {"path", "labels_path"}:
        return load_path(args["path"], args.get("labels_path"))
    raise ValueError(f"unknown dataset source {source!r}: expected 'digits', 'shapes', a path, or a dict "
                     "with kind 'digits', 'shapes' (n, size, seed) or 'path' (path, labels_path)")


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) sorted row indices: the first round(n * val_fraction) (>= 1) of a seeded permutation are val;
    val_fraction 0 means no validation split (every row trains, val is empty)."""
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1) (0: no validation split), got {val_fraction}")
    if val_fraction == 0:
        if n < 1:
            raise ValueError("need at least 1 example to train on, got 0")
        return np.arange(n), np.arange(0)
    if n < 2:
        raise ValueError(f"need at least 2 examples to split into train and validation, got {n}")
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def preview_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, str]:
    """The rows to show a model's quality on and what they are: its validation split, or its training rows
    ("training") when it was trained without one."""
    train, val = split_indices(n, val_fraction, seed)
    return (val, "validation") if len(val) else (train, "training")


def __getattr__(name: str) -> Any:
    """The file loaders, re-exported lazily (PEP 562) so that data_files can import this module."""
    if name in _FILE_EXPORTS:
        from vae_core import data_files

        return getattr(data_files, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
