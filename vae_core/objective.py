"""The negative ELBO in nats per image, its remedies for KL vanishing (beta, warm-up, free bits), and the IWAE bound.
The reconstruction term is the model's likelihood (vae_core/likelihoods.py)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .likelihoods import LOG_2PI
from .model import VAE, VAEOutput


@dataclass
class LossTerms:
    total: torch.Tensor  # scalar: recon + beta * kl_penalty, what is minimised
    recon: torch.Tensor  # scalar: -E_q[log p(x|z)], nats per image
    kl: torch.Tensor  # scalar: KL(q(z|x) || N(0, I)), nats per image (summed over dimensions)
    kl_per_dim: torch.Tensor  # (D,) batch-mean KL of each latent dimension
    beta: float  # the weight actually used (after warm-up)

    @property
    def neg_elbo(self) -> torch.Tensor:
        return self.recon + self.kl


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) per dimension: 1/2 (mu^2 + sigma^2 - log sigma^2 - 1) (Kingma & Welling 2014, App. B)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0)  # (B, D)


def kl_weight(step: int, beta: float, warmup_steps: int) -> float:
    """Linear KL warm-up: the weight ramps from 0 to beta over warmup_steps (Bowman et al. 2016)."""
    if warmup_steps <= 0:
        return beta
    return beta * min(1.0, step / warmup_steps)


def lr_factor(step: int, total_steps: int, schedule: str, warmup_steps: int) -> float:
    """The share of the peak learning rate at a step (0-based): a linear warm-up over warmup_steps, then constant or
    a cosine decay to 0 at total_steps (Loshchilov & Hutter 2017, without restarts)."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if schedule == "constant" or total_steps <= warmup_steps:
        return warm
    progress = min(1.0, max(0, step - warmup_steps) / (total_steps - warmup_steps))
    return warm * 0.5 * (1.0 + math.cos(math.pi * progress))


def loss_terms(model: VAE, x: torch.Tensor, out: VAEOutput, beta: float = 1.0, free_bits: float = 0.0) -> LossTerms:
    """-ELBO = recon + KL, averaged over the batch; the optimised total uses beta and free bits per dimension."""
    recon = model.likelihood.loss(x, out.x_params, model.obs_log_sigma())
    kl_dims = kl_per_dim(out.mu, out.logvar).mean(0)  # (D,)
    kl = kl_dims.sum()
    # free bits (Kingma et al. 2016): dimensions below the floor are not pushed further toward the prior
    kl_penalty = torch.clamp(kl_dims, min=free_bits).sum() if free_bits > 0 else kl
    total = recon + kl_penalty if beta == 1.0 else recon + beta * kl_penalty  # (no multiply node for beta 1)
    return LossTerms(total=total, recon=recon, kl=kl, kl_per_dim=kl_dims, beta=beta)


@torch.no_grad()
def iwae_bound(model: VAE, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """L_k = E[log 1/k sum_i p(x, z_i) / q(z_i|x)] <= log p(x) per image (Burda et al. 2015); L_1 is the ELBO. (B,)"""
    mu, logvar = model.encode(x)  # (B, D)
    std = torch.exp(0.5 * logvar)
    eps = torch.randn((k, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)  # (k, B, D)
    z = mu + std * eps
    log_q = (-0.5 * (LOG_2PI + logvar + eps.pow(2))).sum(-1)  # (k, B)
    log_prior = (-0.5 * (LOG_2PI + z.pow(2))).sum(-1)  # (k, B)
    x_params = model.decode(z.flatten(0, 1))  # (k*B, C, H, W)
    x_rep = x.unsqueeze(0).expand(k, *x.shape).flatten(0, 1)
    log_px = model.likelihood.log_prob(x_rep, x_params, model.obs_log_sigma()).view(k, -1)  # (k, B)
    return torch.logsumexp(log_px + log_prior - log_q, dim=0) - math.log(k)
