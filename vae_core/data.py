"""Datasets: bundled digits, procedural shapes, and user files (IDX, .npy/.npz, folders or zips of images).

Every loader checks sizes before it allocates and raises ValueError naming the file and the problem.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import lzma
import math
import os
import struct
import warnings
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import numpy as np
from PIL import Image

DEFAULT_MAX_BYTES = 2 * 1024**3  # of decoded float32 images; env VAE_MAX_DATA_BYTES and max_bytes= override it
MMAP_THRESHOLD = 256 * 1024**2  # with mmap=None, uint8/float32 .npy files larger than this are memory-mapped
MAX_CLASSES = 10_000  # labels are class indices 0..MAX_CLASSES-1
ZIP_MAX_RATIO = 200  # zip members inflating more than this are refused as bombs...
ZIP_RATIO_FLOOR = 1 << 20  # ...once over 1 MiB: small blank images legitimately compress 200x
GZIP_MAX_RATIO = 1032  # deflate cannot inflate more than ~1032x, so a gzip claiming more is lying
SHAPE_NAMES = ["square", "ellipse", "triangle", "heart"]
SHAPE_FACTORS = ["shape", "scale", "rotation", "pos_x", "pos_y"]
IMAGE_KEYS = ("x", "images", "X", "data", "arr_0")
LABEL_KEYS = ("y", "labels", "Y", "targets", "arr_1")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}
_PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
_WIDE_MODES = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N"}  # 16/32-bit grayscale, scaled by 65535 (F: as is)
_GRAY_MODES = _WIDE_MODES | {"1", "L", "LA", "La"}
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
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
    """scikit-learn's bundled 1797 8x8 handwritten digits, scaled from 0..16 to [0, 1]."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8)
    return Dataset(images, bunch.target.astype(np.int64), [str(i) for i in range(10)],
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


# ---------------------------------------------------------------- IDX (MNIST, Fashion-MNIST)

def load_idx(images_path: str | os.PathLike, labels_path: str | os.PathLike | None = None,
             max_bytes: int | None = None) -> Dataset:
    """IDX images (and optional labels), raw or gzipped, as in yann.lecun.com/exdb/mnist."""
    path, limit = _existing(images_path), _limit(max_bytes)
    labels_file = None if labels_path is None else _existing(labels_path)
    with _named(path.name):
        dataset = _array_dataset(_read_idx(path, limit, images=True), path.name, _path_source(path, labels_file))
    if labels_file is not None:
        with _named(labels_file.name):
            raw = _read_idx(labels_file, limit, images=False)
            dataset.labels, dataset.class_names = _labels(raw, dataset.n, labels_file.name)
    return dataset


def _read_idx(path: Path, limit: int, images: bool) -> np.ndarray:
    """An IDX file's array, after checking its header against the file size and the limit."""
    name, gz = path.name, _sniff(path) == "gzip"
    with (gzip.open if gz else open)(path, "rb") as f:
        magic = f.read(4)
        if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_DTYPES:
            raise ValueError(f"{name}: wrong magic number {magic.hex()}: not an IDX file "
                             "(expected 00 00, a type code 08..0e, then the number of dimensions)")
        dtype, ndim = np.dtype(_IDX_DTYPES[magic[2]]), magic[3]
        if (dtype != np.uint8) if images else (dtype.kind not in "iu"):
            raise ValueError(f"{name}: unsupported IDX dtype 0x{magic[2]:02x} for {'images' if images else 'labels'}"
                             f"; expected {'unsigned byte (0x08)' if images else 'an integer type (0x08..0x0c)'}")
        if ndim not in ((3, 4) if images else (1,)):
            raise ValueError(f"{name}: unsupported IDX shape: {ndim} dimensions; expected "
                             f"{'3 (N, H, W) or 4 (N, H, W, C)' if images else '1 (N,)'}")
        head = f.read(4 * ndim)
        if len(head) < 4 * ndim:
            raise ValueError(f"{name}: truncated header")
        dims = struct.unpack(f">{ndim}I", head)
        count = math.prod(dims)
        nbytes = count * dtype.itemsize
        _check_size(name, count * (4 if images else 8), limit, "decoded data")
        if gz and nbytes > GZIP_MAX_RATIO * path.stat().st_size + 1024:
            raise ValueError(f"{name}: header/size mismatch: header declares {nbytes:,} bytes of data, more "
                             f"than a {path.stat().st_size:,}-byte gzip can hold")
        if not gz and path.stat().st_size != 4 + 4 * ndim + nbytes:
            raise ValueError(f"{name}: header/size mismatch: header declares dims {dims} = {nbytes:,} bytes "
                             f"of data, the file holds {path.stat().st_size - 4 - 4 * ndim:,}")
        data = f.read(nbytes)
        if len(data) != nbytes or f.read(1):
            raise ValueError(f"{name}: header/size mismatch: header declares {nbytes:,} bytes of data, the "
                             f"gzip holds {'fewer' if len(data) != nbytes else 'more'}")
    return np.frombuffer(data, dtype).reshape(dims)


def find_idx_labels(images_path: str | os.PathLike) -> Path | None:
    """The labels file beside an IDX images file by the usual naming, if it exists."""
    path = Path(images_path)
    stem = path.name[:-3] if path.name.endswith(".gz") else path.name
    guess = stem.replace("images", "labels").replace("idx3", "idx1")
    if guess == stem:
        return None
    first, second = (guess + ".gz", guess) if path.name.endswith(".gz") else (guess, guess + ".gz")
    return next((path.with_name(g) for g in (first, second) if path.with_name(g).is_file()), None)


# ---------------------------------------------------------------- .npy / .npz

def load_array(path: str | os.PathLike, max_bytes: int | None = None, mmap: bool | None = None) -> Dataset:
    """Images from a .npy, or a .npz with images (and labels, class_names) under the usual keys."""
    path, limit = _existing(path), _limit(max_bytes)
    name, kind = path.name, _sniff(path) if path.is_file() else "unknown"
    with _named(name):
        if kind == "npy":
            x, mmap = _open_npy(path, limit, mmap)
            return _array_dataset(x, name, _path_source(path), mmap)
        if kind != "zip":
            raise ValueError(f"{name}: not a .npy or .npz file (wrong magic number)")
        if mmap:
            raise ValueError(f"{name}: .npz archives cannot be memory-mapped; save the images as .npy")
        return _load_npz(path, limit)


def _npy_header(f: io.IOBase, name: str, kinds: str = "biuf") -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, data bytes) from a .npy header, refusing pickled and unsupported dtypes."""
    version = np.lib.format.read_magic(f)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"{name}: unsupported .npy format version {version}")
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    try:
        shape, _, dtype = read(f)
    except Exception as exc:  # numpy's header parser raises ValueError, SyntaxError, TokenError, ...
        raise ValueError(f"{name}: corrupt .npy header ({type(exc).__name__}: {exc})") from exc
    if dtype.hasobject:
        raise ValueError(f"{name}: object arrays are not supported (they need pickle, which is never allowed)")
    if dtype.kind not in kinds or dtype.fields:
        raise ValueError(f"{name}: unsupported dtype {dtype}")
    return shape, dtype, math.prod(shape) * dtype.itemsize


def _open_npy(path: Path, limit: int, mmap: bool | None) -> tuple[np.ndarray, bool]:
    """A .npy file as a read-only memory map, and whether to keep it mapped."""
    with open(path, "rb") as f:
        shape, dtype, nbytes = _npy_header(f, path.name)
        held = path.stat().st_size - f.tell()
    if held != nbytes:
        raise ValueError(f"{path.name}: header/size mismatch: header declares shape {shape} of {dtype} = "
                         f"{nbytes:,} bytes of data, the file holds {held:,}")
    _layout(shape, path.name)
    if mmap is None:
        mmap = path.stat().st_size > MMAP_THRESHOLD and dtype in (np.uint8, np.float32)
    _check_size(path.name, nbytes if mmap else max(nbytes, math.prod(shape) * 4), limit,
                "the mapped array" if mmap else "decoded float32 images")
    return np.load(path, mmap_mode="r", allow_pickle=False), mmap


def _load_npz(path: Path, limit: int) -> Dataset:
    """Images, labels and class names from a .npz, each member's header checked before reading."""
    with zipfile.ZipFile(path) as zf:
        members = {i.filename[:-4]: i for i in zf.infolist() if i.filename.endswith(".npy")}
        key = next((k for k in IMAGE_KEYS if k in members), None)
        if key is None:
            raise ValueError(f"{path.name}: no images: expected an array named one of {IMAGE_KEYS}, "
                             f"found {sorted(members)}")
        dataset = _array_dataset(_npz_member(zf, members[key], path, limit), path.name, _path_source(path))
        label_key = next((k for k in LABEL_KEYS if k in members), None)
        if label_key is not None:
            raw = _npz_member(zf, members[label_key], path, limit)
            dataset.labels, dataset.class_names = _labels(raw, dataset.n, f"{path.name}:{label_key}")
        if label_key is not None and "class_names" in members:
            names = _npz_member(zf, members["class_names"], path, limit, kinds="US")
            if names.ndim != 1 or len(names) < len(dataset.class_names):
                raise ValueError(f"{path.name}: class_names must list a name for each of the "
                                 f"{len(dataset.class_names)} label values, got shape {names.shape}")
            dataset.class_names = [str(s) for s in names]
    return dataset


def _npz_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, limit: int,
                kinds: str = "biuf") -> np.ndarray:
    """One array of a .npz, refused before reading if its header disagrees with the zip or the limit."""
    name = f"{path.name}:{info.filename[:-4]}"
    _check_member(zf, info, name, limit)
    with zf.open(info) as f:
        shape, dtype, nbytes = _npy_header(f, name, kinds)
        offset = f.tell()
    if info.file_size != offset + nbytes:
        raise ValueError(f"{name}: header/size mismatch: header declares {nbytes:,} bytes of data, the "
                         f"archive member holds {info.file_size - offset:,}")
    _check_size(name, max(nbytes, math.prod(shape) * 4), limit)
    with zf.open(info) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


# ---------------------------------------------------------------- folders and zips of images

class _Entry(NamedTuple):
    name: str  # "archive.zip:cat/1.png" or "folder/cat/1.png", for error messages
    folder: str | None  # the immediate parent folder: the label
    size: int  # bytes on disk (uncompressed)
    read: Callable[[], bytes]


def load_images(path: str | os.PathLike, size: int | None = None, max_bytes: int | None = None,
                max_files: int = 200_000) -> Dataset:
    """A folder or .zip of images, labelled by their subfolder, resized to one size (never extracted)."""
    path, limit = _existing(path), _limit(max_bytes)
    if size is not None and size < 1:
        raise ValueError(f"{path.name}: size must be >= 1, got {size}")
    with _named(path.name):
        if path.is_dir():
            return _images_dataset(path, _folder_entries(path, max_files), size, limit, max_files)
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path.name}: not a zip archive or a folder of images")
        with zipfile.ZipFile(path) as zf:
            return _images_dataset(path, _zip_entries(zf, path.name, limit), size, limit, max_files)


def _hidden(parts: tuple | list) -> bool:
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _folder_entries(root: Path, max_files: int) -> list[_Entry]:
    entries = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).parts
        if len(entries) > max_files:
            break  # _images_dataset refuses it
        if not _hidden(rel) and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file():
            entries.append(_Entry(f"{root.name}/{'/'.join(rel)}", rel[-2] if len(rel) > 1 else None,
                                  p.stat().st_size, p.read_bytes))
    return entries


def _check_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, limit: int) -> None:
    """Refuse a zip member before reading it: encrypted, over the limit, or claiming more than the archive."""
    if info.flag_bits & 0x1:
        raise ValueError(f"{label}: encrypted members are not supported")
    _check_size(label, info.file_size, limit, "the uncompressed member")
    if info.compress_size > os.path.getsize(zf.filename):  # zipfile would allocate this much to read it
        raise ValueError(f"{label}: header/size mismatch: declares {info.compress_size:,} compressed bytes, "
                         f"more than the whole archive")


def _zip_entries(zf: zipfile.ZipFile, name: str, limit: int) -> list[_Entry]:
    """The image members of a zip, each refused if encrypted, over the limit or inflating absurdly."""
    entries = []
    for info in zf.infolist():
        parts, label = info.filename.split("/"), f"{name}:{info.filename}"
        if info.is_dir() or _hidden(parts) or Path(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
            continue
        _check_member(zf, info, label, limit)
        if info.file_size > ZIP_RATIO_FLOOR and info.file_size > ZIP_MAX_RATIO * max(info.compress_size, 1):
            raise ValueError(f"{label}: compression ratio {info.file_size / max(info.compress_size, 1):,.0f}x "
                             f"is over {ZIP_MAX_RATIO}x (a zip bomb?)")
        entries.append(_Entry(label, parts[-2] if len(parts) > 1 else None, info.file_size,
                              lambda info=info: zf.read(info)))
    return entries


def _images_dataset(path: Path, entries: list[_Entry], size: int | None, limit: int, max_files: int) -> Dataset:
    """Decode entries into (N, C, H, W): grayscale if every image is, else RGB; the most common size."""
    if not entries:
        raise ValueError(f"{path.name}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    if len(entries) > max_files:
        raise ValueError(f"{path.name}: too many images: more than max_files={max_files}")
    _check_size(path.name, sum(e.size for e in entries), limit, "the uncompressed image files")
    headers = [_image_header(e, limit) for e in entries]  # (grayscale?, (w, h))
    w, h = (size, size) if size else Counter(s for _, s in headers).most_common(1)[0][0]
    c = 1 if all(gray for gray, _ in headers) else 3
    _check_size(path.name, len(entries) * c * h * w * 4, limit)
    images = np.empty((len(entries), c, h, w), np.float32)
    for i, entry in enumerate(entries):
        images[i] = _decode_image(entry, c, (w, h), limit)
    folders = [e.folder for e in entries]
    labels = class_names = None
    if None not in folders and len(set(folders)) > 1:  # one shared folder is not a labelling
        class_names = sorted(set(folders))
        labels = np.searchsorted(class_names, folders).astype(np.int64)
    return Dataset(images, labels, class_names, name=path.name, source=_path_source(path))


def _open_image(entry: _Entry, limit: int) -> Image.Image:
    """A lazily opened image, refused from its header if decoding it would be too large."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = Image.open(io.BytesIO(entry.read()), formats=_PIL_FORMATS)
    _check_size(entry.name, image.size[0] * image.size[1] * 16, limit, "the decoded RGBA image")
    return image


def _image_header(entry: _Entry, limit: int) -> tuple[bool, tuple[int, int]]:
    """(is the image grayscale?, (width, height)) without decoding most images."""
    with _named(entry.name, (Exception,)):  # PIL raises many types on corrupt files
        image = _open_image(entry, limit)
        if image.mode in ("P", "PA"):
            palette = np.array(image.getpalette() or [0, 0, 0]).reshape(-1, 3)
            return bool((palette == palette[:, :1]).all()), image.size
        return image.mode in _GRAY_MODES, image.size


def _decode_image(entry: _Entry, c: int, size: tuple[int, int], limit: int) -> np.ndarray:
    """One image as float32 (c, h, w) in [0, 1], alpha composited over black, bilinear-resized."""
    with _named(entry.name, (Exception,)):
        image = _open_image(entry, limit)
        if image.mode in _WIDE_MODES:
            pixels = np.asarray(image, np.float32)[..., None] / (1.0 if image.mode == "F" else 65535.0)
        else:
            alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
            pixels = np.asarray(image.convert("RGBA" if alpha else "RGB"), np.float32) / 255
            pixels = pixels[..., :3] * pixels[..., 3:] if alpha else pixels
        channels = [pixels[..., k] for k in range(pixels.shape[-1])][:c]  # gray images have r == g == b
        if channels[0].shape != size[::-1]:
            channels = [np.asarray(Image.fromarray(ch).resize(size, Image.Resampling.BILINEAR)) for ch in channels]
        return np.clip(np.stack(channels * (c // len(channels))), 0, 1)


# ---------------------------------------------------------------- dispatch

def load_path(path: str | os.PathLike, labels_path: str | os.PathLike | None = None,
              max_bytes: int | None = None) -> Dataset:
    """Load a folder, .zip, .npy/.npz or IDX (optionally gzipped) file, chosen by type and magic bytes."""
    path = _existing(path)
    kind = "dir" if path.is_dir() else _sniff(path)
    if labels_path is not None and kind not in ("idx", "gzip"):
        raise ValueError(f"{path.name}: labels_path is only used with IDX files")
    if kind == "dir" or (kind == "zip" and path.suffix.lower() != ".npz"):
        return load_images(path, max_bytes=max_bytes)
    if kind in ("npy", "zip"):
        return load_array(path, max_bytes=max_bytes)
    if kind in ("idx", "gzip"):
        return load_idx(path, labels_path if labels_path is not None else find_idx_labels(path), max_bytes)
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
    """(train, val) sorted row indices: the first round(n * val_fraction) (>= 1) of a seeded permutation are val."""
    if n < 2:
        raise ValueError(f"need at least 2 examples to split into train and validation, got {n}")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
