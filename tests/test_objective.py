"""The objective against trusted references: torch.distributions for KL, Monte Carlo for KL, and the IWAE bound's
ordering on a briefly trained model (the likelihoods themselves: tests/test_likelihoods.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_digits
from vae_core.likelihoods import likelihood
from vae_core.metrics import evaluate
from vae_core.model import VAE
from vae_core.objective import iwae_bound, kl_per_dim, kl_weight, loss_terms
from vae_core.jobs import TrainingJob, build_model


def _posterior(seed: int = 0, b: int = 16, d: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, d, generator=gen) * 2, torch.randn(b, d, generator=gen)  # mu, logvar


@pytest.fixture(scope="module")
def trained() -> tuple[VAE, torch.Tensor]:
    """A digits VAE trained for a few seconds, and every digits image (1797) to average bounds over."""
    ds = load_digits()
    job = TrainingJob(ds, ModelConfig(input_shape=ds.shape, latent_dim=8, hidden_sizes=(128,)),
                      TrainConfig(epochs=5, batch_size=64, lr=3e-3, seed=0), threads=1).start()
    assert job.join(timeout=120) and job.state == "finished", job.error
    return job.model_snapshot(), torch.from_numpy(ds.images)


# ---------------------------------------------------------------- KL

def test_kl_per_dim_matches_torch_kl_divergence_summed_over_dims():
    mu, logvar = _posterior()
    ours = kl_per_dim(mu, logvar).sum(1)  # (B,)
    ref = kl_divergence(Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)).sum(1)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_kl_per_dim_matches_a_monte_carlo_estimate():
    mu, logvar = _posterior(seed=1, b=4, d=3)
    mu, logvar = mu.double() / 2, logvar.double() / 2  # moderate values keep the estimator's variance small
    q = Normal(mu, torch.exp(0.5 * logvar))
    eps = torch.randn((100_000, *mu.shape), generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    z = mu + torch.exp(0.5 * logvar) * eps  # (S, B, D) samples of q
    log_ratio = (q.log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(-1)  # (S, B)
    estimate, stderr = log_ratio.mean(0), log_ratio.std(0) / math.sqrt(len(z))
    exact = kl_per_dim(mu, logvar).sum(1)
    assert ((estimate - exact).abs() < 5 * stderr + 1e-3).all(), (estimate, exact, stderr)


def test_kl_is_zero_exactly_at_the_prior_and_positive_elsewhere():
    zeros = torch.zeros(3, 4)
    assert torch.equal(kl_per_dim(zeros, zeros), zeros)
    mu, logvar = _posterior(seed=2)
    assert (kl_per_dim(mu, logvar) > 0).all()


# ---------------------------------------------------------------- the loss

def test_loss_is_recon_plus_beta_kl_in_nats_per_image():
    model = build_model(ModelConfig(latent_dim=3, hidden_sizes=(16,)), seed=0)
    x = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(5))
    out = model(x, generator=torch.Generator().manual_seed(6))
    terms = loss_terms(model, x, out, beta=0.25)
    recon = -likelihood("bernoulli").log_prob(x, out.x_params).mean()
    kl_dims = kl_per_dim(out.mu, out.logvar).mean(0)
    torch.testing.assert_close(terms.recon, recon)
    torch.testing.assert_close(terms.kl_per_dim, kl_dims)
    torch.testing.assert_close(terms.kl, kl_dims.sum())  # summed over dimensions, not averaged
    torch.testing.assert_close(terms.total, recon + 0.25 * kl_dims.sum())
    torch.testing.assert_close(terms.neg_elbo, recon + kl_dims.sum())


def test_free_bits_stop_pushing_dimensions_below_the_floor():
    model = build_model(ModelConfig(latent_dim=4, hidden_sizes=(16,)), seed=0)
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    out = model(x, generator=torch.Generator().manual_seed(8))
    floor = kl_per_dim(out.mu, out.logvar).mean(0).max().item() + 1.0  # above every dimension's KL
    terms = loss_terms(model, x, out, beta=1.0, free_bits=floor)
    torch.testing.assert_close(terms.total, terms.recon + 4 * floor)  # the KL penalty is constant...
    mu_grad, = torch.autograd.grad(terms.total - terms.recon, out.mu)
    assert torch.count_nonzero(mu_grad) == 0  # ...so it no longer pulls the posteriors to the prior
    assert terms.kl > 0  # while the reported KL is still the true one


def test_kl_warmup_ramps_linearly_to_beta():
    assert [kl_weight(s, 2.0, 10) for s in (0, 5, 10, 50)] == [0.0, 1.0, 2.0, 2.0]
    assert kl_weight(0, 0.5, 0) == 0.5


# ---------------------------------------------------------------- IWAE

def test_iwae_with_one_sample_is_the_single_sample_elbo():
    model = build_model(ModelConfig(latent_dim=3, hidden_sizes=(16,)), seed=1)
    x = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(9))
    l1 = iwae_bound(model, x, 1, torch.Generator().manual_seed(10))
    mu, logvar = model.encode(x)
    eps = torch.randn((1, *mu.shape), generator=torch.Generator().manual_seed(10))[0]
    z = mu + torch.exp(0.5 * logvar) * eps
    q, prior = Normal(mu, torch.exp(0.5 * logvar)), Normal(0.0, 1.0)
    ref = (Bernoulli(logits=model.decode(z), validate_args=False).log_prob(x).flatten(1).sum(1)
           + prior.log_prob(z).sum(1) - q.log_prob(z).sum(1))
    torch.testing.assert_close(l1, ref.detach(), rtol=1e-5, atol=1e-4)


def test_iwae_bound_is_above_the_elbo_and_rises_with_k(trained):
    """Averaged over all 1797 digits, L_1 <= L_5 <= L_50 up to three standard errors of the paired differences."""
    model, x = trained
    bounds = {k: iwae_bound(model, x, k, torch.Generator().manual_seed(0)) for k in (1, 5, 50)}  # (N,) each
    for lo, hi in ((1, 5), (5, 50), (1, 50)):
        diff = bounds[hi] - bounds[lo]
        stderr = diff.std().item() / math.sqrt(len(diff))
        assert diff.mean().item() > -3 * stderr, (lo, hi, diff.mean().item(), stderr)
    gain = bounds[50] - bounds[1]
    assert gain.mean().item() > 3 * gain.std().item() / math.sqrt(len(gain))  # strictly better, not just noise
    elbo = evaluate(model, x.numpy(), iwae_k=0).elbo  # the closed-form-KL ELBO that the app reports
    assert bounds[50].mean().item() > elbo
    assert np.isfinite([b.mean().item() for b in bounds.values()]).all()


def test_lr_factor_warms_up_linearly_then_follows_torchs_cosine_annealing():
    from vae_core.objective import lr_factor

    warmup, total = 10, 110
    assert [lr_factor(s, total, "cosine", warmup) for s in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=0.0)
    for step in range(warmup, total):  # after the warm-up: torch's schedule, step for step
        assert lr_factor(step, total, "cosine", warmup) == pytest.approx(reference.get_last_lr()[0], abs=1e-12)
        opt.step()
        reference.step()
    assert lr_factor(total - 1, total, "cosine", warmup) < 1e-3  # next to 0 at the last step
    assert lr_factor(50, total, "constant", warmup) == 1.0 and lr_factor(0, total, "constant", 0) == 1.0
