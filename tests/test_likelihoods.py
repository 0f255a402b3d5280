"""The likelihood family (vae_core/likelihoods.py) against torch.distributions, entry by entry: each one's
log-probability, fast loss and mean image; the observation log-std a model carries; an unknown name refused."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Normal

from vae_core.config import ModelConfig
from vae_core.export import OUTPUT_OPS
from vae_core.likelihoods import LIKELIHOODS, likelihood
from vae_core.model import VAE

# each likelihood as torch.distributions builds it from the decoder's output and the observation log-std
REFERENCES = {
    "bernoulli": lambda x_params, log_sigma: Bernoulli(logits=x_params, validate_args=False),  # grey pixels too
    "gaussian": lambda x_params, log_sigma: Normal(x_params, log_sigma.exp()),
    "gaussian-learned": lambda x_params, log_sigma: Normal(x_params, log_sigma.exp()),
}
SIGMAS = {"none": [None], "fixed": [0.1, 1.0, 2.5], "learned": [0.1, 1.0, 2.5]}


def _cases(seed: int):
    """Decoder outputs on both sides of [0, 1], and binary, grey and RGB images."""
    gen = torch.Generator().manual_seed(seed)
    for shape in ((6, 1, 4, 4), (5, 3, 2, 2)):
        x_params = torch.randn(shape, generator=gen) * 3
        yield x_params, torch.randint(0, 2, shape, generator=gen).float()
        yield x_params, torch.rand(shape, generator=gen)


@pytest.mark.parametrize("name", LIKELIHOODS)
def test_each_likelihood_log_prob_and_loss_match_torch_distributions(name):
    lik = likelihood(name)
    for sigma in SIGMAS[lik.sigma]:
        log_sigma = None if sigma is None else torch.tensor(sigma).log()
        for x_params, x in _cases(seed=3):
            ref = REFERENCES[name](x_params, log_sigma).log_prob(x).flatten(1).sum(1)  # (B,)
            torch.testing.assert_close(lik.log_prob(x, x_params, log_sigma), ref)
            torch.testing.assert_close(lik.loss(x, x_params, log_sigma), -ref.mean())  # the training step's loss


@pytest.mark.parametrize("name", LIKELIHOODS)
def test_each_likelihood_mean_is_the_distributions_mean_in_the_image_range(name):
    """decode_mean's images, and the browser's output op on the same decoder output (vae_core/export.py's reference)."""
    lik = likelihood(name)
    for x_params, _ in _cases(seed=4):
        ref = REFERENCES[name](x_params, torch.tensor(0.0)).mean.clamp(0.0, 1.0)
        torch.testing.assert_close(lik.mean(x_params), ref)
        np.testing.assert_allclose(OUTPUT_OPS[lik.output_op](x_params.numpy()), ref.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", LIKELIHOODS)
def test_models_use_their_likelihoods_configured_or_learned_sigma(name):
    model = VAE(ModelConfig(likelihood=name, gaussian_sigma=0.3))
    expected = {"none": None, "fixed": math.log(0.3), "learned": -1.0}[likelihood(name).sigma]
    log_sigma = model.obs_log_sigma()
    assert (log_sigma is None) == (expected is None)
    if expected is not None:
        assert log_sigma.item() == pytest.approx(expected)
    assert (likelihood(name).sigma == "learned") == any(p is log_sigma for p in model.parameters())


def test_an_unknown_likelihood_is_refused_with_the_known_names():
    for bad in ("poisson", "Bernoulli", None):
        with pytest.raises(ValueError, match="likelihood must be one of") as info:
            likelihood(bad)
        assert all(repr(name) in str(info.value) for name in LIKELIHOODS)
    with pytest.raises(ValueError, match="'gaussian-learned'"):
        ModelConfig(likelihood="poisson")  # the config asks the same table
