""".npy and .npz image arrays (labels and class names from the usual .npz keys), never unpickled; a large .npy is
memory-mapped instead of read."""
from __future__ import annotations

import io
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from .arrays import array_dataset, class_labels, image_layout
from .checks import byte_limit, check_member, check_size, existing, named, sniff
from .dataset import Dataset, path_source

IMAGE_KEYS = ("x", "images", "X", "data", "arr_0")
LABEL_KEYS = ("y", "labels", "Y", "targets", "arr_1")
MMAP_THRESHOLD = 256 * 1024**2  # with mmap=None, uint8/float32 .npy files larger than this are memory-mapped


def load_array(path: str | os.PathLike, max_bytes: int | None = None, mmap: bool | None = None) -> Dataset:
    """Images from a .npy, or a .npz with images (and labels, class_names) under the usual keys."""
    path, limit = existing(path), byte_limit(max_bytes)
    name, kind = path.name, sniff(path) if path.is_file() else "unknown"
    with named(name):
        if kind == "npy":
            x, mmap = _open_npy(path, limit, mmap)
            return array_dataset(x, name, path_source(path), mmap)
        if kind != "zip":
            raise ValueError(f"{name}: not a .npy or .npz file (wrong magic number)")
        if mmap:
            raise ValueError(f"{name}: .npz archives cannot be memory-mapped; save the images as .npy")
        return _load_npz(path, limit)


def _npy_header(f: io.IOBase, name: str, size: int, where: str, kinds: str = "biuf") -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, data bytes) from the header of a size-byte .npy; refuses pickles, odd dtypes and size mismatch."""
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
    nbytes, held = math.prod(shape) * dtype.itemsize, size - f.tell()
    if held != nbytes:
        raise ValueError(f"{name}: header/size mismatch: header declares shape {shape} of {dtype} = "
                         f"{nbytes:,} bytes of data, the {where} holds {held:,}")
    return shape, dtype, nbytes


def _open_npy(path: Path, limit: int, mmap: bool | None) -> tuple[np.ndarray, bool]:
    """A .npy file as a read-only memory map, and whether to keep it mapped."""
    with open(path, "rb") as f:
        shape, dtype, nbytes = _npy_header(f, path.name, path.stat().st_size, "file")
    image_layout(shape, path.name)
    if mmap is None:
        mmap = path.stat().st_size > MMAP_THRESHOLD and dtype in (np.uint8, np.float32)
    check_size(path.name, nbytes if mmap else max(nbytes, math.prod(shape) * 4), limit,
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
        dataset = array_dataset(_npz_member(zf, members[key], path, limit), path.name, path_source(path))
        label_key = next((k for k in LABEL_KEYS if k in members), None)
        if label_key is not None:
            raw = _npz_member(zf, members[label_key], path, limit)
            dataset.labels, dataset.class_names = class_labels(raw, dataset.n, f"{path.name}:{label_key}")
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
    check_member(zf, info, name, limit)
    with zf.open(info) as f:
        shape, dtype, nbytes = _npy_header(f, name, info.file_size, "archive member", kinds)
    check_size(name, max(nbytes, math.prod(shape) * 4), limit)
    with zf.open(info) as f:
        return np.lib.format.read_array(f, allow_pickle=False)
