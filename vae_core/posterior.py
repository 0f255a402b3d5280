"""Posterior uncertainty: what q(z|x) = N(mu, diag(sigma^2)) allows for one image — samples decoded side by side —
and where it lies on a 2-D map: the mu +- k sigma ellipse of its projection (latent axes or PCA; a linear map A
sends the posterior to N(A mu, A diag(sigma^2) A^T))."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .latent import decode
from .model import VAE
from .projections import METHODS, Projection


@dataclass
class PosteriorDecodes:
    mu: np.ndarray  # (D,) posterior mean
    sigma: np.ndarray  # (D,) posterior standard deviation
    z: np.ndarray  # (n, D) samples of q(z|x)
    images: np.ndarray  # (n, C, H, W) the decoder's mean at each sample
    mean_image: np.ndarray  # (C, H, W) the decoder's mean at mu (the reconstruction)


@torch.no_grad()
def posterior_decodes(model: VAE, image: np.ndarray, n: int, generator: torch.Generator) -> PosteriorDecodes:
    """Encode one image (C, H, W), draw n codes z = mu + sigma * eps from q(z|x) with the generator, decode them."""
    if n < 1:
        raise ValueError(f"need at least one sample, got n={n}")
    model.eval()
    x = torch.as_tensor(np.asarray(image, np.float32)[None])
    mu, logvar = (t[0] for t in model.encode(x))  # (D,), (D,)
    sigma = torch.exp(0.5 * logvar)
    z = mu + sigma * torch.randn((n, len(mu)), generator=generator)  # (n, D)
    images = decode(model, z.numpy())
    return PosteriorDecodes(mu.numpy(), sigma.numpy(), z.numpy(), images, decode(model, mu.numpy()[None])[0])


def projection_matrix(projection: Projection, latent_dim: int) -> np.ndarray:
    """The linear map A (2, D) of a fitted linear projection (latent axes, PCA): y = A (z - m)."""
    if not projection.spec.linear:
        which = " or ".join(m.label for m in METHODS.values() if m.linear)
        raise ValueError(f"posterior ellipses need a linear projection ({which}), not {projection.method!r}")
    if projection.components_.shape != (2, latent_dim):
        raise ValueError(f"the projection maps {projection.components_.shape[1]} dimensions, not {latent_dim}")
    return projection.components_.astype(np.float64)


def projected_covariance(a: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """A diag(sigma^2) A^T for each posterior: logvar (K, D) -> (K, 2, 2)."""
    var = np.exp(np.atleast_2d(np.asarray(logvar, np.float64)))  # (K, D)
    return np.einsum("id,kd,jd->kij", a, var, a)


def ellipse(centre: np.ndarray, cov: np.ndarray, k: float = 2.0, points: int = 48) -> np.ndarray:
    """points on the boundary {y : (y - c)^T cov^-1 (y - c) = k^2}, counter-clockwise from the major axis:
    (points, 2)."""
    values, vectors = np.linalg.eigh(np.asarray(cov, np.float64))  # ascending: the major axis last
    radii = k * np.sqrt(np.clip(values, 0.0, None))
    t = np.linspace(0.0, 2 * np.pi, points, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)])[::-1]  # start on the major axis (the last eigenvector)
    return np.asarray(centre, np.float64)[None] + (vectors @ (radii[:, None] * circle)).T


def posterior_ellipses(projection: Projection, mu: np.ndarray, logvar: np.ndarray, k: float = 2.0,
                       points: int = 48) -> np.ndarray:
    """The mu +- k sigma ellipse of each posterior on the map: mu, logvar (K, D) -> (K, points, 2)."""
    mu = np.atleast_2d(mu)
    a = projection_matrix(projection, mu.shape[1])
    centres = projection.transform(mu).astype(np.float64)  # (K, 2): A (mu - m)
    covs = projected_covariance(a, logvar)
    return np.stack([ellipse(c, s, k, points) for c, s in zip(centres, covs)]) if len(mu) else np.zeros((0, points, 2))
