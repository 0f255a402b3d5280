"""Evaluation of a trained VAE: -ELBO split into reconstruction and KL, the IWAE bound, active units, MIG."""
from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import torch

from .model import VAE
from .objective import iwae_bound, kl_per_dim

KL_COLLAPSE_NATS = 0.05  # a latent dimension with less KL than this carries (almost) no information
ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2015: unit u is active if Cov_x(E_q[z_u]) > 0.01


@dataclass
class Evaluation:
    elbo: float  # the bound itself (log-likelihood side), nats per image
    reconstruction: float  # -E_q[log p(x|z)], nats per image
    kl: float  # KL(q(z|x) || p(z)), nats per image
    iwae: float | None  # L_k >= elbo, or None when k = 0
    iwae_k: int
    active_units: int
    kl_per_dim: list[float]
    n: int
    mu: np.ndarray | None = field(default=None, repr=False, compare=False)  # (n, D) posterior means, in row order

    def to_dict(self) -> dict:
        """The figures (JSON-ready), without the posterior means."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "mu"}


def _batches(images, batch_size: int):
    """Float32 tensors of consecutive rows of an (N, C, H, W) array or Dataset, batch_size at a time."""
    n = images.n if hasattr(images, "n") else len(images)
    for start in range(0, n, batch_size):
        idx = np.arange(start, min(n, start + batch_size))
        chunk = images.batch(idx) if hasattr(images, "batch") else images[idx]
        yield torch.as_tensor(np.ascontiguousarray(chunk, dtype=np.float32))


@torch.no_grad()
def encode_dataset(model: VAE, images, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and log-variances of every image, in batches (bounded memory): two (N, D) arrays."""
    model.eval()
    device = next(model.parameters()).device
    mus, logvars = [], []
    for x in _batches(images, batch_size):
        mu, logvar = model.encode(x.to(device))
        mus.append(mu.cpu().numpy())
        logvars.append(logvar.cpu().numpy())
    return np.concatenate(mus), np.concatenate(logvars)


def active_units(mu: np.ndarray, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """Number of latent units whose posterior mean varies across the data by more than threshold."""
    if len(mu) < 2:
        return 0
    return int((np.var(mu, axis=0, ddof=1) > threshold).sum())


def collapsed_dims(kl_per_dim, threshold: float = KL_COLLAPSE_NATS) -> int:
    """How many latent dimensions carry less KL than threshold."""
    return int((np.asarray(kl_per_dim, dtype=np.float64) < threshold).sum())


def kl_vanishing(kl_per_dim, threshold: float = KL_COLLAPSE_NATS) -> bool:
    """Most dimensions collapsed onto the prior: the decoder is learning to ignore z."""
    return len(kl_per_dim) > 0 and collapsed_dims(kl_per_dim, threshold) > len(kl_per_dim) / 2


@torch.no_grad()
def evaluate(model: VAE, images, iwae_k: int = 0, seed: int = 0, batch_size: int = 512) -> Evaluation:
    """Test -ELBO (one posterior sample per image), its split, IWAE with k samples, per-dim KL and active units."""
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    n, recon_sum, kl_dims_sum, iwae_sum, mus = 0, 0.0, None, 0.0, []
    for x in _batches(images, batch_size):
        x = x.to(device)
        mu, logvar = model.encode(x)
        z = model.reparameterize(mu, logvar, gen)
        recon_sum += -model.likelihood.log_prob(x, model.decode(z), model.obs_log_sigma()).sum().item()
        kl_b = kl_per_dim(mu, logvar).sum(0)  # (D,)
        kl_dims_sum = kl_b if kl_dims_sum is None else kl_dims_sum + kl_b
        if iwae_k > 0:
            chunk = max(1, batch_size // iwae_k)
            iwae_sum += sum(iwae_bound(model, x[i:i + chunk], iwae_k, gen).sum().item() for i in range(0, len(x), chunk))
        mus.append(mu.cpu().numpy())
        n += len(x)
    if n == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    kl_dims = (kl_dims_sum / n).cpu().tolist()
    recon, kl = recon_sum / n, float(sum(kl_dims))
    mu_all = np.concatenate(mus)
    return Evaluation(
        elbo=-(recon + kl), reconstruction=recon, kl=kl, iwae=iwae_sum / n if iwae_k > 0 else None, iwae_k=iwae_k,
        active_units=active_units(mu_all), kl_per_dim=kl_dims, n=n, mu=mu_all,
    )


def _discretize(values: np.ndarray, bins: int = 20) -> np.ndarray:
    """Equal-width bin index of each value (for histogram mutual information)."""
    edges = np.histogram_bin_edges(values, bins=bins)
    return np.digitize(values, edges[1:-1])


def _mutual_info(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) in nats between two discrete integer arrays."""
    joint = np.histogram2d(a, b, bins=(a.max() + 1, b.max() + 1))[0] / len(a)
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())


def mig(mu: np.ndarray, factors: np.ndarray, bins: int = 20) -> float:
    """Mutual Information Gap (Chen et al. 2018): mean over factors of the gap between the two most informative
    latents' mutual information, normalised by the factor's entropy. 0 = entangled, 1 = perfectly disentangled."""
    if mu.shape[1] < 2:
        raise ValueError("MIG needs at least 2 latent dimensions")
    codes = np.stack([_discretize(mu[:, j], bins) for j in range(mu.shape[1])])  # (D, N)
    gaps = []
    for k in range(factors.shape[1]):
        f = factors[:, k]
        fk = np.unique(f, return_inverse=True)[1] if len(np.unique(f)) <= bins else _discretize(f, bins)
        entropy = _mutual_info(fk, fk)
        if entropy <= 0:
            continue
        mi = np.sort([_mutual_info(codes[j], fk) for j in range(len(codes))])[::-1]
        gaps.append((mi[0] - mi[1]) / entropy)
    return float(np.mean(gaps)) if gaps else 0.0
