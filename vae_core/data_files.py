"""File formats for data.py: IDX (optionally gzipped), .npy/.npz, and folders or zips of images.

Each reader checks a file's header against its size and the byte limit before it allocates, and raises ValueError
naming the file (or archive member) and the problem. Import the loaders from vae_core.data, which re-exports them.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import struct
import warnings
import zipfile
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np
from PIL import Image

from vae_core.data import (GZIP_MAX_RATIO, MMAP_THRESHOLD, ZIP_MAX_RATIO, ZIP_RATIO_FLOOR, Dataset, _array_dataset,
                           _check_size, _existing, _labels, _layout, _limit, _named, _path_source, _sniff)

IMAGE_KEYS = ("x", "images", "X", "data", "arr_0")
LABEL_KEYS = ("y", "labels", "Y", "targets", "arr_1")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}
_PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
_WIDE_MODES = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N"}  # 16/32-bit grayscale, scaled by 65535 (F: as is)
_GRAY_MODES = _WIDE_MODES | {"1", "L", "LA", "La"}
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


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
        shape, dtype, nbytes = _npy_header(f, name, info.file_size, "archive member", kinds)
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


def _is_image(parts: Sequence[str]) -> bool:
    """An image file by its suffix, outside hidden folders and macOS resource forks."""
    hidden = any(p.startswith(".") or p == "__MACOSX" for p in parts)
    return not hidden and Path(parts[-1]).suffix.lower() in IMAGE_SUFFIXES


def _entry(name: str, parts: Sequence[str], size: int, read: Callable[[], bytes]) -> _Entry:
    """An image labelled by its immediate parent folder (None at the top level)."""
    return _Entry(name, parts[-2] if len(parts) > 1 else None, size, read)


def _folder_entries(root: Path, max_files: int) -> list[_Entry]:
    """The image files under root, in sorted order, stopping once past max_files."""
    entries = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).parts
        if len(entries) > max_files:
            break  # _images_dataset refuses it
        if _is_image(rel) and p.is_file():
            entries.append(_entry(f"{root.name}/{'/'.join(rel)}", rel, p.stat().st_size, p.read_bytes))
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
        if info.is_dir() or not _is_image(parts):
            continue
        _check_member(zf, info, label, limit)
        if info.file_size > ZIP_RATIO_FLOOR and info.file_size > ZIP_MAX_RATIO * max(info.compress_size, 1):
            raise ValueError(f"{label}: compression ratio {info.file_size / max(info.compress_size, 1):,.0f}x "
                             f"is over {ZIP_MAX_RATIO}x (a zip bomb?)")
        entries.append(_entry(label, parts, info.file_size, lambda info=info: zf.read(info)))
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


@contextlib.contextmanager
def _open_image(entry: _Entry, limit: int) -> Iterator[Image.Image]:
    """A lazily opened image, refused from its header if too large; errors in the block name the entry."""
    with _named(entry.name, (Exception,)):  # PIL raises many types on corrupt files
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(entry.read()), formats=_PIL_FORMATS)
        _check_size(entry.name, image.size[0] * image.size[1] * 16, limit, "the decoded RGBA image")
        yield image


def _image_header(entry: _Entry, limit: int) -> tuple[bool, tuple[int, int]]:
    """(is the image grayscale?, (width, height)) without decoding most images."""
    with _open_image(entry, limit) as image:
        if image.mode in ("P", "PA"):
            palette = np.array(image.getpalette() or [0, 0, 0]).reshape(-1, 3)
            return bool((palette == palette[:, :1]).all()), image.size
        return image.mode in _GRAY_MODES, image.size


def _decode_image(entry: _Entry, c: int, size: tuple[int, int], limit: int) -> np.ndarray:
    """One image as float32 (c, h, w) in [0, 1], alpha composited over black, bilinear-resized."""
    with _open_image(entry, limit) as image:
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

