"""IDX files (MNIST, Fashion-MNIST), raw or gzipped, with their labels file found beside them by name."""
from __future__ import annotations

import gzip
import math
import os
import struct
from pathlib import Path

import numpy as np

from .arrays import array_dataset, class_labels
from .checks import byte_limit, check_gzip_holds, check_size, existing, named, sniff
from .dataset import Dataset, path_source

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def load_idx(images_path: str | os.PathLike, labels_path: str | os.PathLike | None = None,
             max_bytes: int | None = None) -> Dataset:
    """IDX images (and optional labels), raw or gzipped, as in yann.lecun.com/exdb/mnist."""
    path, limit = existing(images_path), byte_limit(max_bytes)
    labels_file = None if labels_path is None else existing(labels_path)
    with named(path.name):
        dataset = array_dataset(_read_idx(path, limit, images=True), path.name, path_source(path, labels_file))
    if labels_file is not None:
        with named(labels_file.name):
            raw = _read_idx(labels_file, limit, images=False)
            dataset.labels, dataset.class_names = class_labels(raw, dataset.n, labels_file.name)
    return dataset


def _read_idx(path: Path, limit: int, images: bool) -> np.ndarray:
    """An IDX file's array, after checking its header against the file size and the limit."""
    name, gz = path.name, sniff(path) == "gzip"
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
        check_size(name, count * (4 if images else 8), limit, "decoded data")
        if gz:
            check_gzip_holds(name, nbytes, path)
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
