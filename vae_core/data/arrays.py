"""Image arrays into Datasets: the layout (NHW, NHWC, NCHW), the value range (0..255 or [0, 1]) and class labels,
each validated with an error naming the file. Used by the IDX and the .npy/.npz readers."""
from __future__ import annotations

import numpy as np

from .checks import row_slices
from .dataset import Dataset

MAX_CLASSES = 10_000  # labels are class indices 0..MAX_CLASSES-1


def image_layout(shape: tuple, name: str) -> str:
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


def _divisor(x: np.ndarray, name: str) -> float:
    """255 for 0..255 data, 1 for [0, 1] data; refuses NaN/inf and other ranges (checked in chunks)."""
    if x.dtype == np.uint8:
        return 255.0
    chunks = lambda: (np.asarray(x[s]) for s in row_slices(x))  # noqa: E731  (re-read: x may be a memmap)
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
    for s in row_slices(view):
        out[s] = view[s]
        out[s] /= divisor
    return out


def array_dataset(x: np.ndarray, name: str, source: dict, mmap: bool = False) -> Dataset:
    """Validate an image array and wrap it: a float32 copy, or (mmap) a lazy (N, C, H, W) view."""
    view = _nchw(x, image_layout(x.shape, name))
    divisor = _divisor(view, name)
    if mmap and divisor != (255.0 if x.dtype == np.uint8 else 1.0):
        raise ValueError(f"{name}: memory-mapped arrays must be uint8 or floats in [0, 1]: rescale and "
                         "re-save it, or load it with mmap=False")
    return Dataset(view if mmap else _materialise(view, divisor), name=name, source=source)


def class_labels(raw: np.ndarray, n: int, name: str) -> tuple[np.ndarray, list[str]]:
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
