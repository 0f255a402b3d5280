"""The latent space of a trained VAE: encode, project to 2-D, traverse, interpolate, sample (vae_core.export sends the
networks to the browser)."""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .metrics import encode_dataset
from .model import VAE
from .objective import kl_per_dim

COLLAPSED_KL = 0.05  # nats: a dimension with less mean KL carries (almost) no information (as ui.charts)
METHODS = ("identity", "pca", "tsne", "umap")  # umap: only with the optional umap-learn (requirements-umap.txt)
LOG_2PI = float(np.log(2 * np.pi))


# --------------------------------------------------------------------------- encoding and per-dimension statistics


def encode(model: VAE, images, sample: bool = False, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes, mu, logvar), each (N, D): codes are the posterior means, or one seeded sample of q(z|x) each."""
    mu, logvar = encode_dataset(model, images)
    codes = posterior_samples(mu, logvar, seed) if sample else mu
    return codes, mu, logvar


def posterior_samples(mu: np.ndarray, logvar: np.ndarray, seed: int = 0) -> np.ndarray:
    """One z ~ q(z|x) = N(mu, exp(logvar)) per row, seeded."""
    gen = torch.Generator().manual_seed(seed)
    eps = torch.randn(mu.shape, generator=gen).numpy()
    return (mu + np.exp(0.5 * logvar) * eps).astype(np.float32)


def kl_per_image(mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """KL(q(z|x) || p(z)) of every image in nats: (N,)."""
    return kl_per_dim(torch.as_tensor(mu), torch.as_tensor(logvar)).sum(1).numpy()


@dataclass
class DimOrder:
    order: list[int]  # latent dimensions, most informative first, collapsed ones last
    kl: np.ndarray  # (D,) mean KL per dimension, nats
    collapsed: np.ndarray  # (D,) bool: kl < threshold


def dims_by_kl(mu: np.ndarray, logvar: np.ndarray, threshold: float = COLLAPSED_KL) -> DimOrder:
    """Latent dimensions ordered by their mean KL over the data (descending); collapsed ones marked and last."""
    kl = kl_per_dim(torch.as_tensor(mu), torch.as_tensor(logvar)).mean(0).numpy()  # (D,)
    collapsed = kl < threshold
    order = sorted(range(len(kl)), key=lambda d: (bool(collapsed[d]), -float(kl[d])))
    return DimOrder(order=order, kl=kl, collapsed=collapsed)


def aggregate_posterior_samples(mu: np.ndarray, logvar: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """n draws from q(z) = 1/N sum_x q(z|x): a random image (with replacement), then z ~ q(z|x). (n, D)."""
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randint(0, len(mu), (n,), generator=gen).numpy()
    eps = torch.randn((n, mu.shape[1]), generator=gen).numpy()
    return (mu[rows] + np.exp(0.5 * logvar[rows]) * eps).astype(np.float32)


def slider_ranges(samples: np.ndarray, lower: float = 1.0, upper: float = 99.0) -> np.ndarray:
    """Per-dimension (lo, hi) from the lower-th to upper-th percentile of aggregate-posterior samples: (D, 2)."""
    lo, hi = np.percentile(samples, [lower, upper], axis=0)
    hi = np.maximum(hi, lo + 1e-3)  # a degenerate dimension still gets a usable slider
    return np.stack([lo, hi], axis=1).astype(np.float32)


# --------------------------------------------------------------------------- the prior


def prior_samples(n: int, latent_dim: int, temperature: float = 1.0, seed: int = 0) -> np.ndarray:
    """n draws from N(0, temperature^2 I), seeded through a torch.Generator: (n, D)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    gen = torch.Generator().manual_seed(seed)
    return (temperature * torch.randn((n, latent_dim), generator=gen)).numpy()


def prior_log_density(z: np.ndarray) -> np.ndarray:
    """log N(z; 0, I) of each row, in nats: -1/2 (D log 2 pi + |z|^2). (N,)."""
    z = np.atleast_2d(np.asarray(z, dtype=np.float64))
    return -0.5 * (z.shape[1] * LOG_2PI + (z ** 2).sum(1))


# --------------------------------------------------------------------------- paths and grids through z-space


def lerp(z0: np.ndarray, z1: np.ndarray, steps: int) -> np.ndarray:
    """steps points on the straight line from z0 to z1, both ends included: (steps, D)."""
    t = np.linspace(0.0, 1.0, steps)[:, None]
    return ((1 - t) * np.asarray(z0, np.float64) + t * np.asarray(z1, np.float64)).astype(np.float32)


def slerp(z0: np.ndarray, z1: np.ndarray, steps: int) -> np.ndarray:
    """Spherical interpolation (Shoemake 1985; White 2016 for generative models), both ends included: (steps, D).

    Moves along the great circle between the directions of z0 and z1 while the norm goes linearly from |z0| to |z1|,
    so the path stays in the shell where N(0, I) puts its mass instead of cutting through the low-norm middle."""
    z0, z1 = np.asarray(z0, np.float64), np.asarray(z1, np.float64)
    n0, n1 = np.linalg.norm(z0), np.linalg.norm(z1)
    if n0 < 1e-12 or n1 < 1e-12:
        return lerp(z0, z1, steps)
    u0, u1 = z0 / n0, z1 / n1
    omega = np.arccos(np.clip(u0 @ u1, -1.0, 1.0))
    t = np.linspace(0.0, 1.0, steps)[:, None]
    if omega < 1e-6:  # (anti)parallel: no unique great circle, fall back to the straight line
        out = lerp(z0, z1, steps).astype(np.float64)
    else:
        direction = (np.sin((1 - t) * omega) * u0 + np.sin(t * omega) * u1) / np.sin(omega)  # unit vectors
        out = direction * ((1 - t) * n0 + t * n1)
    out[0], out[-1] = z0, z1  # exact endpoints
    return out.astype(np.float32)


def traversal_grid(z: np.ndarray, dims: list[int], ranges: np.ndarray, steps: int) -> np.ndarray:
    """One row per chosen dimension, sweeping it over its range with the others held at z: (len(dims), steps, D)."""
    z = np.asarray(z, np.float32)
    grid = np.repeat(np.repeat(z[None, None], len(dims), 0), steps, 1)
    for row, d in enumerate(dims):
        grid[row, :, d] = np.linspace(ranges[d][0], ranges[d][1], steps)
    return grid


def manifold_grid(z: np.ndarray, dims: tuple[int, int], ranges: np.ndarray, steps: int) -> np.ndarray:
    """A steps x steps grid over two dimensions, the others held at z (Kingma & Welling 2014, fig. 4): (S, S, D).

    Rows run from the top (high values of dims[1]) down, columns left to right over dims[0], as in a plot."""
    i, j = dims
    if i == j:
        raise ValueError("manifold_grid needs two different dimensions")
    z = np.asarray(z, np.float32)
    grid = np.tile(z, (steps, steps, 1))
    xs = np.linspace(ranges[i][0], ranges[i][1], steps)
    ys = np.linspace(ranges[j][1], ranges[j][0], steps)
    grid[:, :, i] = xs[None, :]
    grid[:, :, j] = ys[:, None]
    return grid


def nearest_neighbours(z: np.ndarray, codes: np.ndarray, k: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Rows of codes closest to z in Euclidean distance, nearest first: (indices (k,), distances (k,))."""
    d2 = ((codes - np.asarray(z, np.float32)[None]) ** 2).sum(1)
    k = min(k, len(codes))
    idx = np.argpartition(d2, k - 1)[:k] if k < len(codes) else np.arange(len(codes))
    idx = idx[np.argsort(d2[idx], kind="stable")]
    return idx, np.sqrt(d2[idx])


# --------------------------------------------------------------------------- decoding


@torch.no_grad()
def decode(model: VAE, z: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """E[x|z] for every row of z (any leading shape), as float32 images in [0, 1]: (..., C, H, W)."""
    model.eval()
    z = np.asarray(z, np.float32)
    flat = z.reshape(-1, z.shape[-1])
    device = next(model.parameters()).device
    out = [model.decode_mean(torch.as_tensor(flat[i:i + batch_size], device=device)).cpu().numpy()
           for i in range(0, len(flat), batch_size)]
    images = np.concatenate(out) if out else np.zeros((0, *model.config.input_shape), np.float32)
    return images.reshape(*z.shape[:-1], *model.config.input_shape)


@torch.no_grad()
def reconstruction_error(model: VAE, images, mu: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """-log p(x | z = mu) of every image in nats (the reconstruction term at the posterior mean): (N,)."""
    model.eval()
    n = images.n if hasattr(images, "n") else len(images)
    errors = []
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(n, start + batch_size))
        x = torch.as_tensor(images.batch(idx) if hasattr(images, "batch") else np.asarray(images[idx], np.float32))
        x_params = model.decode(torch.as_tensor(mu[idx]))
        errors.append(-model.likelihood.log_prob(x, x_params, model.obs_log_sigma()).numpy())
    return np.concatenate(errors) if errors else np.zeros(0, np.float32)


# --------------------------------------------------------------------------- projection to 2-D


def umap_available() -> bool:
    """Whether the optional umap-learn package is installed (it is not imported here: its import compiles)."""
    import importlib.util

    return importlib.util.find_spec("umap") is not None


def projection_key(run_path: str, run_mtime: float, source, method: str, params: dict) -> str:
    """A canonical string naming one projection: same model file, data, method and parameters -> same key."""
    return json.dumps({"run": str(run_path), "mtime": float(run_mtime), "data": source, "method": method,
                       "params": params}, sort_keys=True, default=str)


class Projection:
    """2-D view of latent codes, estimator-style: identity (two chosen axes), PCA, or t-SNE / UMAP on a subsample.

    fit(codes) sets embedding_ (M, 2) for rows_ (M indices into codes; all rows unless t-SNE subsampled),
    and for PCA mean_, components_ (2, D), explained_variance_ratio_ (2,). t-SNE is scikit-learn's Barnes-Hut
    (van der Maaten 2014) on at most max_points codes, with PCA initialisation and the automatic learning rate; UMAP
    (McInnes et al. 2018, umap-learn) likewise on at most max_points codes. Neither has an exact map for new codes:
    transform places them by their nearest fitted codes, as the browser does."""

    def __init__(self, method: str = "pca", dims: tuple[int, int] = (0, 1), perplexity: float = 30.0,
                 max_points: int = 3000, iterations: int = 500, n_neighbours: int = 10, seed: int = 0,
                 umap_neighbours: int = 15, min_dist: float = 0.1):
        self.method, self.dims, self.perplexity, self.iterations = method, tuple(dims), perplexity, iterations
        self.max_points, self.n_neighbours, self.seed = max_points, n_neighbours, seed
        self.umap_neighbours, self.min_dist = umap_neighbours, min_dist

    @property
    def exact(self) -> bool:
        """Whether transform(z) is the projection itself (identity, PCA) rather than a neighbour-based placement."""
        return self.method not in ("tsne", "umap")

    def fit(self, codes: np.ndarray) -> Projection:
        codes = np.asarray(codes, np.float32)
        if self.method not in METHODS:
            raise ValueError(f"projection method must be one of {METHODS}, got {self.method!r}")
        if codes.ndim != 2 or len(codes) < 2:
            raise ValueError(f"need at least 2 codes of shape (N, D) to project, got {codes.shape}")
        self.rows_ = np.arange(len(codes))
        if self.method == "identity":
            self._check_dims(codes.shape[1])
            self.embedding_ = codes[:, list(self.dims)].copy()
        elif self.method == "pca":
            self._fit_pca(codes)
            self.embedding_ = self.transform(codes)
        elif self.method == "tsne":
            self._fit_tsne(codes)
        else:
            self._fit_umap(codes)
        return self

    def _check_dims(self, d: int) -> None:
        i, j = self.dims
        if not (0 <= i < d and 0 <= j < d) or (i == j and d > 1):
            raise ValueError(f"identity projection needs two different dimensions in 0..{d - 1}, got {self.dims}")

    def _fit_pca(self, codes: np.ndarray) -> None:
        self.mean_ = codes.mean(0)
        centred = (codes - self.mean_).astype(np.float64)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)  # principal axes = rows of vt
        vt = vt * np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(1)])[:, None]  # deterministic signs
        components = np.zeros((2, codes.shape[1]))
        components[:min(2, len(vt))] = vt[:2]
        variance = s ** 2
        ratio = np.zeros(2)
        ratio[:min(2, len(s))] = variance[:2] / max(variance.sum(), 1e-12)
        self.components_, self.explained_variance_ratio_ = components.astype(np.float32), ratio

    def _subsample(self, codes: np.ndarray) -> None:
        """rows_ and codes_: every code, or a seeded subsample of max_points."""
        if len(codes) > self.max_points:
            rng = np.random.default_rng(self.seed)
            self.rows_ = np.sort(rng.choice(len(codes), self.max_points, replace=False))
        self.codes_ = codes[self.rows_]

    def _fit_umap(self, codes: np.ndarray) -> None:
        if not umap_available():
            raise ValueError("UMAP needs the optional umap-learn package: pip install -r requirements-umap.txt")
        import umap

        self._subsample(codes)
        neighbours = int(min(self.umap_neighbours, len(self.rows_) - 1))
        reducer = umap.UMAP(n_components=2, n_neighbors=max(2, neighbours), min_dist=self.min_dist,
                            random_state=self.seed)  # seeded: one thread, the same map every time
        with warnings.catch_warnings():  # "n_jobs overridden by setting random_state": the seed is the point
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            self.embedding_ = reducer.fit_transform(self.codes_).astype(np.float32)

    def _fit_tsne(self, codes: np.ndarray) -> None:
        from sklearn.manifold import TSNE

        self._subsample(codes)
        perplexity = float(min(self.perplexity, max(1.0, (len(self.rows_) - 1) / 3)))
        tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                    max_iter=max(250, self.iterations), random_state=self.seed)  # 500: settled, at half the cost
        self.embedding_ = tsne.fit_transform(self.codes_).astype(np.float32)

    def transform(self, z: np.ndarray) -> np.ndarray:
        """2-D positions of new codes: exact for identity/PCA; for t-SNE and UMAP, the distance-weighted mean of the
        embedded positions of the k nearest fitted codes (the same placement for both, and in the browser). (K, 2)."""
        z = np.atleast_2d(np.asarray(z, np.float32))
        if self.method == "identity":
            return z[:, list(self.dims)]
        if self.method == "pca":
            return ((z - self.mean_) @ self.components_.T).astype(np.float32)
        return np.stack([self._place(row) for row in z])

    def _place(self, z: np.ndarray) -> np.ndarray:
        idx, dist = nearest_neighbours(z, self.codes_, self.n_neighbours)
        weights = 1.0 / (dist + 1e-6)
        return (weights[:, None] * self.embedding_[idx]).sum(0) / weights.sum()

    def inverse_transform(self, y: np.ndarray) -> np.ndarray:
        """PCA only: the code at 2-D position y (the mean plus y along the two principal axes). (K, D)."""
        if self.method != "pca":
            raise ValueError(f"inverse_transform exists for PCA only, not {self.method!r}")
        return (np.atleast_2d(y) @ self.components_ + self.mean_).astype(np.float32)
