"""The checks every data reader shares: the byte and pixel limits, errors that name the file (as valid text), file
sniffing, zip and gzip ratios.

Each reader checks a file's header against its size and the byte limit before it allocates, and raises ValueError
naming the file (or archive member) and the problem; the helpers for that live here so the readers import them from
one place (this module imports nothing else of the package).
"""
from __future__ import annotations

import contextlib
import lzma
import math
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

DEFAULT_MAX_BYTES = 2 * 1024**3  # of decoded float32 images; env VAE_MAX_DATA_BYTES and max_bytes= override it
ZIP_MAX_RATIO = 200  # zip members inflating more than this are refused as bombs...
ZIP_RATIO_FLOOR = 1 << 20  # ...once over 1 MiB: small blank images legitimately compress 200x
MAX_IMAGE_PIXELS = 1 << 24  # decoded pixels of one image (4096×4096), checked from its header: Pillow only warns
MAX_DATASET_PIXELS = 1 << 28  # ...at 89 M; and of all the images of a dataset together (decoding them is the
# cost); env VAE_MAX_DATA_PIXELS overrides it
GZIP_MAX_RATIO = 1032  # deflate cannot inflate more than ~1032x, so a gzip claiming more is lying
READ_ERRORS = (OSError, EOFError, zlib.error, zipfile.BadZipFile, struct.error, lzma.LZMAError,
               NotImplementedError, RuntimeError)  # what gzip/zipfile raise on corrupt input
MAGIC = {b"\x93NUMPY": "npy", b"PK": "zip", b"\x1f\x8b": "gzip", b"\0\0": "idx"}  # a file's first bytes -> its kind


def byte_limit(max_bytes: int | None) -> int:
    """max_bytes, else $VAE_MAX_DATA_BYTES, else DEFAULT_MAX_BYTES."""
    env = os.environ.get("VAE_MAX_DATA_BYTES", str(DEFAULT_MAX_BYTES))
    if max_bytes is None and not env.strip().isdigit():
        raise ValueError(f"VAE_MAX_DATA_BYTES must be a whole number of bytes, got {env!r}")
    return int(env if max_bytes is None else max_bytes)


def pixel_budget() -> int:
    """The decoded pixels a dataset of images may hold: $VAE_MAX_DATA_PIXELS, else MAX_DATASET_PIXELS."""
    env = os.environ.get("VAE_MAX_DATA_PIXELS", str(MAX_DATASET_PIXELS))
    if not env.strip().isdigit():
        raise ValueError(f"VAE_MAX_DATA_PIXELS must be a whole number of pixels, got {env!r}")
    return int(env)


def check_size(name: str, nbytes: int, limit: int, what: str = "decoded float32 images") -> None:
    """Refuse what would take more than limit bytes, naming the limit and how to raise it."""
    if nbytes > limit:
        raise ValueError(f"{name}: too large: {what} would take {nbytes:,} bytes, over the limit of "
                         f"{limit:,} bytes (max_bytes= or VAE_MAX_DATA_BYTES)")


def check_pixels(name: str, pixels: int, limit: int, what: str) -> None:
    """Refuse images that would decode to more than limit pixels, before decoding them."""
    if pixels > limit:
        raise ValueError(f"{name}: too large to decode: {what} would decode {pixels:,} pixels, over the limit of "
                         f"{limit:,} (make the images smaller before loading them)")


def valid_text(name: str) -> str:
    """A file or folder name as valid text: bytes that are not UTF-8 (which os keeps as lone surrogates) become
    U+FFFD, so the name can be shown, written to JSON and sent to a browser."""
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a lone surrogate outside surrogateescape's range
        return name.encode("utf-8", "replace").decode("utf-8")


@contextlib.contextmanager
def named(name: str, errors: tuple = READ_ERRORS) -> Iterator[None]:
    """Re-raise errors from the block as ValueError whose message starts with the file's name."""
    try:
        yield
    except ValueError as exc:
        if str(exc).startswith(name):
            raise
        raise ValueError(f"{name}: {exc}") from exc
    except errors as exc:
        raise ValueError(f"{name}: unreadable or corrupt ({type(exc).__name__}: {exc})") from exc


def existing(path: str | os.PathLike) -> Path:
    """path as a Path, or a ValueError naming it when there is nothing there."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path.name or path}: no such file or directory")
    return path


def sniff(path: Path) -> str:
    """'npy', 'zip', 'gzip', 'idx' or 'unknown' from a file's first bytes ('dir' for a folder)."""
    if path.is_dir():
        return "dir"
    with open(path, "rb") as f:
        head = f.read(6)
    return next((kind for magic, kind in MAGIC.items() if head.startswith(magic)), "unknown")


def row_slices(x: np.ndarray) -> list[slice]:
    """Slices of ~16M values along the first axis, for chunked validation and conversion."""
    rows = max(1, (1 << 24) // max(1, math.prod(x.shape[1:])))
    return [slice(start, start + rows) for start in range(0, len(x), rows)]


def check_gzip_holds(name: str, nbytes: int, path: Path) -> None:
    """Refuse a gzip whose header declares more data than deflate could inflate from its size."""
    if nbytes > GZIP_MAX_RATIO * path.stat().st_size + 1024:
        raise ValueError(f"{name}: header/size mismatch: header declares {nbytes:,} bytes of data, more "
                         f"than a {path.stat().st_size:,}-byte gzip can hold")


def check_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: str, limit: int) -> None:
    """Refuse a zip member before reading it: encrypted, over the limit, or claiming more than the archive."""
    if info.flag_bits & 0x1:
        raise ValueError(f"{label}: encrypted members are not supported")
    check_size(label, info.file_size, limit, "the uncompressed member")
    if info.compress_size > os.path.getsize(zf.filename):  # zipfile would allocate this much to read it
        raise ValueError(f"{label}: header/size mismatch: declares {info.compress_size:,} compressed bytes, "
                         f"more than the whole archive")


def check_ratio(info: zipfile.ZipInfo, label: str) -> None:
    """Refuse a zip member that inflates absurdly (a zip bomb), once it is over ZIP_RATIO_FLOOR bytes."""
    if info.file_size > ZIP_RATIO_FLOOR and info.file_size > ZIP_MAX_RATIO * max(info.compress_size, 1):
        raise ValueError(f"{label}: compression ratio {info.file_size / max(info.compress_size, 1):,.0f}x "
                         f"is over {ZIP_MAX_RATIO}x (a zip bomb?)")
