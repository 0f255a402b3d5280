"""The VAE: an encoder to q(z|x) = N(mu, diag(exp(logvar))), the reparameterization, a decoder to p(x|z)'s parameters."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .config import ModelConfig
from .likelihoods import LEARNED_LOG_SIGMA_INIT, likelihood


@dataclass
class VAEOutput:
    mu: torch.Tensor  # (B, D)
    logvar: torch.Tensor  # (B, D)
    z: torch.Tensor  # (B, D) one sample of q(z|x)
    x_params: torch.Tensor  # (B, C, H, W) p(x|z)'s parameters: logits (Bernoulli) or means (Gaussian)


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), _mlp([config.input_size, *config.hidden_sizes]), nn.ReLU())
        self.mu = nn.Linear(config.hidden_sizes[-1], config.latent_dim)
        self.logvar = nn.Linear(config.hidden_sizes[-1], config.latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)  # (B, H)
        return self.mu(h), self.logvar(h)


class MLPDecoder(nn.Module):
    """z -> hidden layers (reversed) -> pixels; ends in a Linear layer, never a ReLU: the likelihood is applied later."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.shape = config.input_shape
        self.net = _mlp([config.latent_dim, *reversed(config.hidden_sizes), config.input_size])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.shape)  # (B, C, H, W)


class ConvEncoder(nn.Module):
    """Two stride-2 convolutions (H -> H/4), then dense heads."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        c, h, w = config.input_shape
        hidden = config.hidden_sizes[-1]
        self.body = nn.Sequential(
            nn.Conv2d(c, 32, 4, stride=2, padding=1), nn.ReLU(),  # (B, 32, H/2, W/2)
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),  # (B, 64, H/4, W/4)
            nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), hidden), nn.ReLU(),
        )
        self.mu = nn.Linear(hidden, config.latent_dim)
        self.logvar = nn.Linear(hidden, config.latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mu(h), self.logvar(h)


class ConvDecoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        c, h, w = config.input_shape
        self.grid = (64, h // 4, w // 4)
        self.dense = nn.Sequential(
            nn.Linear(config.latent_dim, config.hidden_sizes[-1]), nn.ReLU(),
            nn.Linear(config.hidden_sizes[-1], 64 * (h // 4) * (w // 4)), nn.ReLU(),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),  # (B, 32, H/2, W/2)
            nn.ConvTranspose2d(32, c, 4, stride=2, padding=1),  # (B, C, H, W), no final activation
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.dense(z).view(-1, *self.grid))


class VAE(nn.Module):
    """The networks of `config.arch` and the likelihood `config.likelihood` (vae_core/likelihoods.py), with its
    observation log-std where it has one."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.likelihood = likelihood(config.likelihood)
        if config.arch == "mlp":
            self.encoder, self.decoder = MLPEncoder(config), MLPDecoder(config)
        else:
            self.encoder, self.decoder = ConvEncoder(config), ConvDecoder(config)
        if self.likelihood.sigma == "learned":
            self.log_sigma = nn.Parameter(torch.full((), LEARNED_LOG_SIGMA_INIT))  # one learned observation log-std
        self.reset_constants()

    def reset_constants(self, device: torch.device | str | None = None) -> None:
        """The buffers rebuilt from the config rather than saved: a fixed observation log-std (it follows the model's
        device). A model loaded onto the meta device's skeleton needs this after its weights are assigned."""
        if self.likelihood.sigma == "fixed":
            value = torch.tensor(math.log(self.config.gaussian_sigma), device=device)
            self.register_buffer("fixed_log_sigma", value, persistent=False)

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
