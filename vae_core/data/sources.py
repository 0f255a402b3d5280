"""Where a dataset comes from: load_source rebuilds one from "digits", "shapes", a path or a Dataset.source dict;
load_path picks the reader for a file by its type and first bytes."""
from __future__ import annotations

import os

from .builtin import load_digits, make_shapes
from .checks import existing, sniff
from .dataset import Dataset
from .idx import find_idx_labels, load_idx
from .images import load_images
from .npy import load_array


def load_path(path: str | os.PathLike, labels_path: str | os.PathLike | None = None,
              max_bytes: int | None = None) -> Dataset:
    """Load a folder, .zip, .npy/.npz or IDX (optionally gzipped) file, chosen by type and magic bytes."""
    path = existing(path)
    kind = sniff(path)
    if labels_path is not None and kind not in ("idx", "gzip"):
        raise ValueError(f"{path.name}: labels_path is only used with IDX files")
    if kind == "dir" or (kind == "zip" and path.suffix.lower() != ".npz"):
        return load_images(path, max_bytes=max_bytes)
    if kind in ("npy", "zip"):
        return load_array(path, max_bytes=max_bytes)
    if kind in ("idx", "gzip"):
        labels_path = find_idx_labels(path) if labels_path is None else labels_path
        return load_idx(path, labels_path, max_bytes)
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
