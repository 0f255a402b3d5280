"""The likelihood family p(x|z), declared once: one `Likelihood` per name, modelled on torch.distributions.

Each entry knows, from the decoder's output `x_params` (B, C, H, W) and, where it has one, the observation log-std:
its log-probability log p(x|z) per image, the fast summed loss the training step minimises, the mean image E[x|z],
how it carries its log sigma (none, fixed from ModelConfig.gaussian_sigma, or a learned parameter), the decoder output
whose mean is a given image (where training starts the output layer's bias: TrainConfig.output_bias), and the op the
browser's decoder ends with (vae_core/export.py sends it; ui/explore/live/network.js applies it).

Adding a likelihood touches this table, its maths here and its test (tests/test_objective.py iterates the table);
the model, the objective, the config's validation, the export, the CLI and the Train form read from here."""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)

Sigma = Literal["none", "fixed", "learned"]  # how a likelihood carries its observation log-std
OutputOp = Literal["sigmoid", "clamp"]  # the browser's last op: E[x|z] from the decoder's output
LEARNED_LOG_SIGMA_INIT = -1.0  # where a learned observation log-std starts (sigma ~ 0.37)
MEAN_EPS = 1e-3  # Bernoulli.params_of_mean keeps a probability this far from 0 and 1 (a finite logit)


class Likelihood:
    """A family of p(x|z) over images, parameterised by the decoder's output (and a log-std where `sigma` != "none")."""

    name: str
    description: str  # one line, the Train form's help
    sigma: Sigma
    output_op: OutputOp

    def log_prob(self, x: torch.Tensor, x_params: torch.Tensor, log_sigma: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x|z) summed over pixels, one value per image: (B,)."""
        raise NotImplementedError

    def loss(self, x: torch.Tensor, x_params: torch.Tensor, log_sigma: torch.Tensor | None = None) -> torch.Tensor:
        """-log p(x|z) summed over pixels and averaged over the batch: a scalar, the mean of -log_prob(...) in one
        reduction. Training calls this every step: no (B, pixels) tensor of per-pixel terms is negated, kept for the
        backward pass and summed per image first (that cost the engine ~5% of a step against a loop using
        reduction="sum")."""
        raise NotImplementedError

    def mean(self, x_params: torch.Tensor) -> torch.Tensor:
        """E[x|z] as an image in [0, 1] (what the browser computes with `output_op`)."""
        raise NotImplementedError

    def params_of_mean(self, mean: torch.Tensor) -> torch.Tensor:
        """The decoder output whose E[x|z] is `mean` (values in [0, 1]): the inverse of `mean`, where training starts
        the decoder's output bias (vae_core/model.py: VAE.start_output_at)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class Bernoulli(Likelihood):
    """Independent Bernoulli pixels with the decoder's output as logits; grey pixels are read as probabilities."""

    name, sigma, output_op = "bernoulli", "none", "sigmoid"
    description = "pixels in [0, 1] as probabilities (the decoder gives logits)"

    def log_prob(self, x, x_params, log_sigma=None):
        return -F.binary_cross_entropy_with_logits(x_params, x, reduction="none").flatten(1).sum(1)

    def loss(self, x, x_params, log_sigma=None):
        return F.binary_cross_entropy_with_logits(x_params, x, reduction="sum") / len(x)

    def mean(self, x_params):
        return torch.sigmoid(x_params)

    def params_of_mean(self, mean):  # the log-odds; a pixel always 0 (or 1) starts at a probability of 1e-3 from it
        return torch.logit(mean.clamp(MEAN_EPS, 1.0 - MEAN_EPS))


class Gaussian(Likelihood):
    """Independent Normal pixels with the decoder's output as means and one observation std, fixed or learned."""

    output_op = "clamp"

    def __init__(self, name: str, sigma: Sigma, description: str):
        self.name, self.sigma, self.description = name, sigma, description

    def log_prob(self, x, x_params, log_sigma=None):
        per_pixel = -0.5 * LOG_2PI - log_sigma - 0.5 * ((x - x_params) / log_sigma.exp()).pow(2)
        return per_pixel.flatten(1).sum(1)

    def loss(self, x, x_params, log_sigma=None):
        pixels = x[0].numel()
        return pixels * (0.5 * LOG_2PI + log_sigma) + 0.5 * ((x - x_params) / log_sigma.exp()).pow(2).sum() / len(x)

    def mean(self, x_params):
        return x_params.clamp(0.0, 1.0)  # the Normal's mean, kept to the image range

    def params_of_mean(self, mean):
        return mean.clone()


_BY_NAME: dict[str, Likelihood] = {entry.name: entry for entry in (
    Bernoulli(),
    Gaussian("gaussian", "fixed", "Normal pixels with a fixed std (the config's gaussian_sigma)"),
    Gaussian("gaussian-learned", "learned",
             f"Normal pixels with one learned std (starts at e^{LEARNED_LOG_SIGMA_INIT:g})"),
)}
LIKELIHOODS: tuple[str, ...] = tuple(_BY_NAME)  # the CLI's choices and the Train form's options
DEFAULT_LIKELIHOOD: str = Bernoulli.name  # what ModelConfig uses unless told otherwise


def likelihood(name: str) -> Likelihood:
    """The likelihood called `name`; an unknown name is refused with the known ones."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {name!r}") from None
