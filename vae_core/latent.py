"""The latent space of a trained VAE: encode, traverse, interpolate, sample (vae_core.projections draws it in 2-D;
vae_core.export sends the networks to the browser)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .metrics import KL_COLLAPSE_NATS, encode_dataset
from .model import VAE
from .objective import kl_per_dim

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


def dims_by_kl(mu: np.ndarray, logvar: np.ndarray, threshold: float = KL_COLLAPSE_NATS) -> DimOrder:
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
