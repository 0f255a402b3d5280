"""The sources that need no file: scikit-learn's bundled digits and the generated dSprites-style shapes."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from .checks import byte_limit, check_size
from .dataset import Dataset

SHAPE_NAMES = ["square", "ellipse", "triangle", "heart"]
SHAPE_FACTORS = ["shape", "scale", "rotation", "pos_x", "pos_y"]


def load_digits() -> Dataset:
    """scikit-learn's bundled 1797 8x8 handwritten digits, scaled from 0..16 to [0, 1].

    Read from the CSV that scikit-learn ships (what `sklearn.datasets.load_digits` reads) without importing
    scikit-learn: its import (scipy included) took ~1.5 s of the app's cold start for an 8 KB file."""
    spec = importlib.util.find_spec("sklearn")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("digits: scikit-learn is not installed (pip install -r requirements.txt)")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)  # (1797, 65): 64 pixels, then the label
    images = (table[:, :-1] / 16.0).reshape(-1, 1, 8, 8)
    return Dataset(images, table[:, -1].astype(np.int64), [str(i) for i in range(10)],
                   name="digits", source={"kind": "digits"})


def make_shapes(n: int = 20000, size: int = 32, seed: int = 0) -> Dataset:
    """dSprites-style binary images: a shape at a seeded scale, rotation and position."""
    if n < 1 or size < 4:
        raise ValueError(f"shapes: need n >= 1 and size >= 4, got n={n}, size={size}")
    check_size("shapes", n * size * size * 4, byte_limit(None))
    rng = np.random.default_rng(seed)
    shape = rng.integers(0, len(SHAPE_NAMES), n)
    scale, rotation = rng.uniform(0.5, 1.0, n), rng.uniform(0.0, 2 * np.pi, n)
    factors = np.column_stack([shape, scale, rotation, rng.uniform(0.0, 1.0, (n, 2))]).astype(np.float32)
    images = np.empty((n, 1, size, size), np.float32)
    for start in range(0, n, 1024):
        images[start:start + 1024, 0] = _draw_shapes(factors[start:start + 1024], size)
    return Dataset(images, shape.astype(np.int64), list(SHAPE_NAMES), factors, list(SHAPE_FACTORS),
                   "shapes", {"kind": "shapes", "n": n, "size": size, "seed": seed})


EXTENT = 1.2 * 0.2  # in image units: every shape lies within 1.2 radii of its centre, and radii are at most 0.2


def _draw_shapes(factors: np.ndarray, size: int) -> np.ndarray:
    """Rasterise rows of factors (B, 5) to (B, size, size) by testing every pixel centre of the square around each
    shape (a pixel outside it lies outside the shape): the same float32 arithmetic per pixel as testing the whole
    image, on a quarter of its pixels at most (tests/test_data_sources.py checks it against the whole image's)."""
    grid = (np.arange(size, dtype=np.float32) + 0.5) / size
    col = lambda j: factors[:, j, None, None]  # noqa: E731  (B, 1, 1)
    centre_x, centre_y = 0.25 + 0.5 * col(3), 0.25 + 0.5 * col(4)
    box = min(size, int(np.ceil(2 * EXTENT * size)) + 3)  # pixels per side: the extent both ways and a margin
    at = np.arange(box)
    x0 = np.clip(np.floor((centre_x[:, 0, 0] - EXTENT) * size - 1).astype(np.int64), 0, size - box)  # (B,)
    y0 = np.clip(np.floor((centre_y[:, 0, 0] - EXTENT) * size - 1).astype(np.int64), 0, size - box)
    xs, ys = x0[:, None] + at, y0[:, None] + at  # (B, box) pixel columns and rows
    radius = 0.2 * col(1)  # every shape lies within 1.2 radii, so centres in [0.25, 0.75] keep it in frame
    dx, dy = grid[xs][:, None, :] - centre_x, grid[ys][:, :, None] - centre_y
    cos, sin = np.cos(col(2)), np.sin(col(2))
    u, v = (cos * dx + sin * dy) / radius, (cos * dy - sin * dx) / radius  # (B, box, box) shape coordinates
    inside = np.zeros(u.shape, bool)
    for k, test in enumerate(_SHAPE_TESTS):
        rows = factors[:, 0] == k
        inside[rows] = test(u[rows], v[rows])
    images = np.zeros((len(factors), size, size), np.float32)
    images[np.arange(len(factors))[:, None, None], ys[:, :, None], xs[:, None, :]] = inside
    return images


def _heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Tested only where |u| and |v| are at most 1.2 (the curve lies within |u| <= 1.04, v in [-0.98, 1.06]): its
    cubes of negative numbers are float32 powers on numpy's slow path, most of the shapes' time on every pixel."""
    near = (np.abs(u) <= 1.2) & (np.abs(v) <= 1.2)
    inside = np.zeros(u.shape, bool)
    x, y = 1.1 * u[near], 1.1 * (0.15 - v[near])  # (x^2 + y^2 - 1)^3 <= x^2 y^3, the classic heart curve, lobes up
    inside[near] = (x * x + y * y - 1) ** 3 <= x * x * y**3
    return inside


_SHAPE_TESTS = (  # is (u, v) inside the shape? v points down the image; each shape lies within radius 1.2
    lambda u, v: np.maximum(np.abs(u), np.abs(v)) <= 0.84,  # square
    lambda u, v: (u / 1.2) ** 2 + (v / 0.7) ** 2 <= 1,  # ellipse
    lambda u, v: (v <= 0.6) & (v >= np.sqrt(3) * np.abs(u) - 1.2),  # equilateral triangle, apex up
    _heart,
)
