"""The Dataset (images in [0, 1] with optional labels and factors) and its seeded train/validation split."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checks import row_slices

FILES_KIND = "path"  # the source kind of a dataset read from files: {"kind": "path", "path": ..., "labels_path": ...}


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
    note: str = ""  # what the loader wants the user to know (e.g. entries it skipped); the Data page and CLI show it

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

    def mean_image(self, idx: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """The mean of rows idx as a float64 (C, H, W) image in [0, 1]: summed as stored (uint8 exactly), in index order
        a chunk at a time, with no float32 copy of the rows (a training job's start, in the server and its worker)."""
        idx = np.sort(np.asarray(idx, dtype=np.int64))
        total = np.zeros(self.images.shape[1:], np.float64)
        for start in range(0, len(idx), chunk):
            total += self.images[idx[start:start + chunk]].sum(0, dtype=np.float64)
        return total / (255 if self.images.dtype == np.uint8 else 1) / max(1, len(idx))

    def subset(self, idx: np.ndarray) -> Dataset:
        """The rows idx, materialised in memory; source still describes the whole dataset."""
        idx = np.asarray(idx, dtype=np.int64)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return Dataset(self.batch(idx), pick(self.labels), self.class_names, pick(self.factors),
                       self.factor_names, self.name, dict(self.source), self.note)

    def summary(self, names: int = 4) -> str:
        """What was inferred, in one line: "2,720 images, 1×105×105, 136 classes (Greek/character01, …)"."""
        c, h, w = self.shape
        text = f"{self.n:,} image{'s' * (self.n != 1)}, {c}×{h}×{w}"
        if self.labels is None:
            return f"{text}, unlabelled"
        classes = self.class_names or [str(i) for i in range(int(self.labels.max()) + 1)]
        shown = classes if len(classes) <= names else [*classes[:names - 1], "…", classes[-1]]
        return f"{text}, {len(classes):,} classes ({', '.join(shown)})"

    def describe(self) -> dict:
        """A JSON-able summary for the UI: size, shape, classes and value range."""
        lo, hi = np.inf, -np.inf
        for s in row_slices(self.images):
            rows = self.batch(np.arange(self.n)[s])
            lo, hi = min(lo, float(rows.min())), max(hi, float(rows.max()))
        counts = {}
        if self.labels is not None:
            names = self.class_names or [str(i) for i in range(int(self.labels.max()) + 1)]
            counts = dict(zip(names, np.bincount(self.labels, minlength=len(names)).tolist()))
        return {"name": self.name, "n": self.n, "shape": self.shape, "n_classes": len(counts),
                "class_counts": counts, "min": lo, "max": hi}


def path_source(path: Path, labels_path: Path | None = None) -> dict:
    """The source dict that rebuilds a dataset read from a file (and its labels file)."""
    return {"kind": FILES_KIND, "path": os.path.abspath(path),
            "labels_path": None if labels_path is None else os.path.abspath(labels_path)}


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
