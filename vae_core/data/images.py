"""Folders and .zip archives of images (PNG, JPEG, ...), labelled by their subfolder, decoded to one size; a zip is
read member by member, never extracted, and every member is checked before it is read."""
from __future__ import annotations

import contextlib
import io
import os
import warnings
import zipfile
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np
from PIL import Image

from .checks import byte_limit, check_member, check_ratio, check_size, existing, named
from .dataset import Dataset, path_source

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}
_PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
_WIDE_MODES = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N"}  # 16/32-bit grayscale, scaled by 65535 (F: as is)
_GRAY_MODES = _WIDE_MODES | {"1", "L", "LA", "La"}


class _Entry(NamedTuple):
    name: str  # "archive.zip:cat/1.png" or "folder/cat/1.png", for error messages
    folder: str | None  # the immediate parent folder: the label
    size: int  # bytes on disk (uncompressed)
    read: Callable[[], bytes]


def load_images(path: str | os.PathLike, size: int | None = None, max_bytes: int | None = None,
                max_files: int = 200_000) -> Dataset:
    """A folder or .zip of images, labelled by their subfolder, resized to one size (never extracted)."""
    path, limit = existing(path), byte_limit(max_bytes)
    if size is not None and size < 1:
        raise ValueError(f"{path.name}: size must be >= 1, got {size}")
    with named(path.name):
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


def _zip_entries(zf: zipfile.ZipFile, name: str, limit: int) -> list[_Entry]:
    """The image members of a zip, each refused if encrypted, over the limit or inflating absurdly."""
    entries = []
    for info in zf.infolist():
        parts, label = info.filename.split("/"), f"{name}:{info.filename}"
        if info.is_dir() or not _is_image(parts):
            continue
        check_member(zf, info, label, limit)
        check_ratio(info, label)
        entries.append(_entry(label, parts, info.file_size, lambda info=info: zf.read(info)))
    return entries


def _images_dataset(path: Path, entries: list[_Entry], size: int | None, limit: int, max_files: int) -> Dataset:
    """Decode entries into (N, C, H, W): grayscale if every image is, else RGB; the most common size."""
    if not entries:
        raise ValueError(f"{path.name}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    if len(entries) > max_files:
        raise ValueError(f"{path.name}: too many images: more than max_files={max_files}")
    check_size(path.name, sum(e.size for e in entries), limit, "the uncompressed image files")
    headers = [_image_header(e, limit) for e in entries]  # (grayscale?, (w, h))
    w, h = (size, size) if size else Counter(s for _, s in headers).most_common(1)[0][0]
    c = 1 if all(gray for gray, _ in headers) else 3
    check_size(path.name, len(entries) * c * h * w * 4, limit)
    images = np.empty((len(entries), c, h, w), np.float32)
    for i, entry in enumerate(entries):
        images[i] = _decode_image(entry, c, (w, h), limit)
    folders = [e.folder for e in entries]
    labels = class_names = None
    if None not in folders and len(set(folders)) > 1:  # one shared folder is not a labelling
        class_names = sorted(set(folders))
        labels = np.searchsorted(class_names, folders).astype(np.int64)
    return Dataset(images, labels, class_names, name=path.name, source=path_source(path))


@contextlib.contextmanager
def _open_image(entry: _Entry, limit: int) -> Iterator[Image.Image]:
    """A lazily opened image, refused from its header if too large; errors in the block name the entry."""
    with named(entry.name, (Exception,)):  # PIL raises many types on corrupt files
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(entry.read()), formats=_PIL_FORMATS)
        check_size(entry.name, image.size[0] * image.size[1] * 16, limit, "the decoded RGBA image")
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

