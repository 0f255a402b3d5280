"""Folders and .zip archives of images (PNG, JPEG, ...), labelled by their folder path, decoded to one size
(optionally resized on load, the aspect kept).

A zip is read member by member, never extracted, and every member is checked before it is read; entries that are
not read (outside the archive, hidden, not images) are counted in the dataset's note. Every image's decoded pixels
are checked from its header (Pillow reads the size without decoding) against a per-image and a per-dataset budget
before anything is decoded: an image over the budget is refused, naming it, except a JPEG, which is decoded reduced
(Pillow's draft, 1/2 to 1/8 of its size) when a smaller size is wanted — other formats cannot be decoded reduced.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import warnings
import zipfile
from collections import Counter
from pathlib import Path
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np
from PIL import Image

from .checks import (MAX_IMAGE_PIXELS, byte_limit, check_member, check_pixels, check_ratio, check_size, existing,
                     named, pixel_budget, valid_text)
from .dataset import Dataset, path_source

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}
_PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM")
_WIDE_MODES = {"I", "F", "I;16", "I;16L", "I;16B", "I;16N"}  # 16/32-bit grayscale, scaled by 65535 (F: as is)
_GRAY_MODES = _WIDE_MODES | {"1", "L", "LA", "La"}
UNSAFE = "outside the archive ('..', an absolute path or a link)"  # why an entry is skipped, as the note says it
HIDDEN = "hidden or macOS metadata"
NOT_IMAGE = "not images"


class _Entry(NamedTuple):
    name: str  # "archive.zip:cat/1.png" or "folder/cat/1.png", for error messages (valid text)
    folders: tuple[str, ...]  # the folders it is in, from the root: its class
    size: int  # bytes on disk (uncompressed)
    read: Callable[[], bytes]


class _Header(NamedTuple):
    gray: bool
    size: tuple[int, int]  # (width, height)
    format: str  # Pillow's: "PNG", "JPEG", ...


def load_images(path: str | os.PathLike, size: int | None = None, max_bytes: int | None = None,
                max_files: int = 200_000, resize: int | None = None, class_levels: int = 0) -> Dataset:
    """A folder or .zip of images labelled by their folder path, decoded to the most common size (never extracted).

    size: every image size×size; resize: the longer side this many pixels, the aspect kept; class_levels: how many
    folder levels below the folder all images share name a class (0: all of them, "Greek/character01")."""
    path, limit = existing(path), byte_limit(max_bytes)
    name = valid_text(path.name)
    for option, value in (("size", size), ("resize", resize)):
        if value is not None and value < 1:
            raise ValueError(f"{name}: {option} must be >= 1, got {value}")
    if class_levels < 0:
        raise ValueError(f"{name}: class_levels must be >= 0 (0: every folder level), got {class_levels}")
    skipped: Counter[str] = Counter()
    with named(name):
        if path.is_dir():
            entries = _folder_entries(path, max_files, skipped)
            return _images_dataset(path, entries, skipped, (size, resize, class_levels), limit, max_files)
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{name}: not a zip archive or a folder of images")
        with zipfile.ZipFile(path) as zf:
            entries = _zip_entries(zf, name, limit, skipped)
            return _images_dataset(path, entries, skipped, (size, resize, class_levels), limit, max_files)


def _skip_reason(name: str, parts: Sequence[str], link: bool = False) -> str | None:
    """Why an entry is not read (None: it is an image to read)."""
    if link or name.startswith("/") or ".." in parts or re.match(r"[A-Za-z]:", name):
        return UNSAFE
    if any(p.startswith(".") or p == "__MACOSX" for p in parts):
        return HIDDEN
    return None if Path(parts[-1]).suffix.lower() in IMAGE_SUFFIXES else NOT_IMAGE


def _folder_entries(root: Path, max_files: int, skipped: Counter) -> list[_Entry]:
    """The image files under root, in sorted order, stopping once past max_files; skipped files counted."""
    entries = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).parts
        if len(entries) > max_files:
            break  # _images_dataset refuses it
        if not p.is_file():
            continue
        reason = _skip_reason("/".join(rel), rel)
        if reason:
            skipped[reason] += 1
        else:
            entries.append(_Entry(valid_text(f"{root.name}/{'/'.join(rel)}"), rel[:-1], p.stat().st_size,
                                  p.read_bytes))
    return entries


def _zip_entries(zf: zipfile.ZipFile, name: str, limit: int, skipped: Counter) -> list[_Entry]:
    """The image members of a zip, each refused if encrypted, over the limit or inflating absurdly; skipped ones
    counted."""
    entries = []
    for info in zf.infolist():
        if info.is_dir():
            continue
        parts, label = info.filename.split("/"), valid_text(f"{name}:{info.filename}")
        reason = _skip_reason(info.filename, parts, link=stat.S_ISLNK(info.external_attr >> 16))
        if reason:
            skipped[reason] += 1
            continue
        check_member(zf, info, label, limit)
        check_ratio(info, label)
        entries.append(_Entry(label, tuple(parts[:-1]), info.file_size, lambda info=info: zf.read(info)))
    return entries


def _images_dataset(path: Path, entries: list[_Entry], skipped: Counter, sizing: tuple[int | None, int | None, int],
                    limit: int, max_files: int) -> Dataset:
    """Decode entries into (N, C, H, W): grayscale if every image is, else RGB; at the most common size, or size×size,
    or resized to `resize` on the longer side; pixels and bytes checked before any decoding."""
    name, (size, resize, class_levels) = valid_text(path.name), sizing
    if not entries:
        raise ValueError(f"{name}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))})"
                         + (f"; {_skipped_note(skipped, 0)}" if skipped else ""))
    if len(entries) > max_files:
        raise ValueError(f"{name}: too many images: more than max_files={max_files}")
    check_size(name, sum(e.size for e in entries), limit, "the uncompressed image files")
    headers = [_image_header(e, limit) for e in entries]
    w, h = Counter(header.size for header in headers).most_common(1)[0][0]
    w, h = (size, size) if size else _resized((w, h), resize) if resize else (w, h)
    c = 1 if all(header.gray for header in headers) else 3
    _check_pixels(name, entries, headers, (w, h))
    check_size(name, len(entries) * c * h * w * 4, limit)
    images = np.empty((len(entries), c, h, w), np.float32)
    for i, entry in enumerate(entries):
        images[i] = _decode_image(entry, c, (w, h), limit)
    classes = _classes([e.folders for e in entries], class_levels)
    labels = class_names = None
    if None not in classes and len(set(classes)) > 1:  # one shared folder is not a labelling
        class_names = sorted(set(classes))
        labels = np.searchsorted(class_names, classes).astype(np.int64)
    note = _skipped_note(skipped, len(entries)) if skipped else ""
    return Dataset(images, labels, class_names, name=name, source=path_source(path), note=note)


def _resized(size: tuple[int, int], side: int) -> tuple[int, int]:
    """(w, h) scaled so that the longer side is `side` pixels, the aspect kept."""
    scale = side / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _classes(folders: list[tuple[str, ...]], levels: int) -> list[str | None]:
    """Each image's class: its folder path below the folders all images share, so equal leaf names under different
    parents stay apart ("Greek/character01"), cut to its first `levels` folders (0: all); an image directly in the
    shared folder is named by that folder, one outside any folder has none. Names are valid text."""
    common = len(os.path.commonprefix(folders))
    names = []
    for parts in folders:
        below = parts[common:][:levels or None]
        names.append("/".join(below) if below else parts[-1] if parts else None)
    return [None if n is None else valid_text(n) for n in names]


def _skipped_note(skipped: Counter, read: int) -> str:
    """'skipped 3 of 20 entries: 1 outside the archive (...), 2 not images'."""
    counts = ", ".join(f"{n:,} {reason}" for reason, n in skipped.most_common())
    return f"skipped {sum(skipped.values()):,} of {sum(skipped.values()) + read:,} entries: {counts}"


def _decoded_size(header: _Header, target: tuple[int, int]) -> tuple[int, int]:
    """The size an image decodes at for a target size: a JPEG at 1/8, 1/4 or 1/2 where that stays at least the
    target (the rule of Pillow's JpegImageFile.draft), any other format whole."""
    (w, h), (tw, th) = header.size, target
    if header.format != "JPEG":
        return w, h
    scale = next((s for s in (8, 4, 2) if min(w // tw, h // th) >= s), 1)
    return (w + scale - 1) // scale, (h + scale - 1) // scale


def _check_pixels(name: str, entries: list[_Entry], headers: list[_Header], target: tuple[int, int]) -> None:
    """Refuse, before decoding, an image or a dataset whose decoded pixels are over their budget."""
    total = 0
    for entry, header in zip(entries, headers):
        w, h = _decoded_size(header, target)
        check_pixels(entry.name, w * h, MAX_IMAGE_PIXELS, f"this {header.size[0]}×{header.size[1]} image")
        total += w * h
    check_pixels(name, total, pixel_budget(), f"its {len(entries):,} images (VAE_MAX_DATA_PIXELS)")


@contextlib.contextmanager
def _open_image(entry: _Entry, limit: int) -> Iterator[Image.Image]:
    """A lazily opened image, refused from its header if too large; errors in the block name the entry."""
    with named(entry.name, (Exception,)):  # PIL raises many types on corrupt files
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(entry.read()), formats=_PIL_FORMATS)
        check_size(entry.name, image.size[0] * image.size[1] * 16, limit, "the decoded RGBA image")
        yield image


def _image_header(entry: _Entry, limit: int) -> _Header:
    """Whether the image is grayscale, its size and format, without decoding most images."""
    with _open_image(entry, limit) as image:
        if image.mode in ("P", "PA"):
            palette = np.array(image.getpalette() or [0, 0, 0]).reshape(-1, 3)
            return _Header(bool((palette == palette[:, :1]).all()), image.size, image.format)
        return _Header(image.mode in _GRAY_MODES, image.size, image.format)


def _decode_image(entry: _Entry, c: int, size: tuple[int, int], limit: int) -> np.ndarray:
    """One image as float32 (c, h, w) in [0, 1], alpha composited over black, bilinear-resized (a JPEG decoded
    reduced first where it is larger)."""
    with _open_image(entry, limit) as image:
        if image.format == "JPEG":
            image.draft(image.mode, size)
        check_pixels(entry.name, image.size[0] * image.size[1], MAX_IMAGE_PIXELS, "this image")
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
