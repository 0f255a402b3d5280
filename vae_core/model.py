"""The VAE: an encoder to q(z|x) = N(mu, diag(exp(logvar))), the reparameterization, a decoder to p(x|z)'s parameters."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .architectures import architecture
from .config import ModelConfig
from .likelihoods import LEARNED_LOG_SIGMA_INIT, likelihood


@dataclass
class VAEOutput:
    mu: torch.Tensor  # (B, D)
    logvar: torch.Tensor  # (B, D)
    z: torch.Tensor  # (B, D) one sample of q(z|x)
    x_params: torch.Tensor  # (B, C, H, W) p(x|z)'s parameters: logits (Bernoulli) or means (Gaussian)


class VAE(nn.Module):
    """The networks of `config.arch` (vae_core/architectures.py) and the likelihood `config.likelihood`
    (vae_core/likelihoods.py), with its observation log-std where it has one."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.likelihood = likelihood(config.likelihood)
        arch = architecture(config.arch)
        self.encoder = arch.encoder(config)
        self.decoder = arch.decoder(config)
        if self.likelihood.sigma == "learned":
            self.log_sigma = nn.Parameter(torch.full((), LEARNED_LOG_SIGMA_INIT))  # one learned observation log-std
        self.reset_constants()

    def reset_constants(self, device: torch.device | str | None = None) -> None:
        """The buffers rebuilt from the config rather than saved: a fixed observation log-std (it follows the model's
        device). A model loaded onto the meta device's skeleton needs this after its weights are assigned."""
        if self.likelihood.sigma == "fixed":
            value = torch.tensor(math.log(self.config.gaussian_sigma), device=device)
            self.register_buffer("fixed_log_sigma", value, persistent=False)

    def start_output_at(self, mean: torch.Tensor) -> None:
        """Start the decoder's output bias where E[x|z] is the image `mean` (C, H, W), e.g. the training images' mean:
        per pixel (per channel for a conv model saved before conv decoders had a pixel bias). An untrained decoder then outputs about the mean image rather
        than grey, and the first epochs learn the digits instead of the background (on real MNIST 5k the default
        recipe ends 3-4 nats better in the same time; bench/bench_quality.py)."""
        self.decoder.start_at_mean(mean, self.likelihood.params_of_mean)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I) from torch's own (seedable, device-aware) RNG."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """p(x|z)'s parameters (logits for Bernoulli, means for Gaussian). See `decode_mean` for images."""
        return self.decoder(z)

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """E[x|z] as an image in [0, 1], the likelihood's mean of the decoder's output."""
        return self.likelihood.mean(self.decode(z))

    def obs_log_sigma(self) -> torch.Tensor | None:
        """The likelihood's observation log-std: learned, fixed from the config, or None where it has none."""
        if self.likelihood.sigma == "learned":
            return self.log_sigma
        if self.likelihood.sigma == "fixed":
            return self.fixed_log_sigma
        return None

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None,
                eps: torch.Tensor | None = None) -> VAEOutput:
        """Encode, sample z (with the given noise eps ~ N(0, I) if passed), decode."""
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * eps if eps is not None else self.reparameterize(mu, logvar, generator)
        return VAEOutput(mu=mu, logvar=logvar, z=z, x_params=self.decode(z))
