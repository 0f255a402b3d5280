"""Evaluation: the -ELBO split, IWAE beside it, batched encoding, active units, and MIG's sanity on shapes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import Dataset, load_array, make_shapes
from vae_core.metrics import active_units, collapsed_dims, encode_dataset, evaluate, kl_vanishing, mig
from vae_core.likelihoods import likelihood
from vae_core.objective import kl_per_dim
from vae_core.jobs import TrainingJob, build_model



@pytest.fixture(scope="module")
def shapes() -> Dataset:
    return make_shapes(n=2000, size=32, seed=0)


def test_evaluation_splits_the_elbo_into_reconstruction_and_kl(digits):
    model = build_model(ModelConfig(input_shape=digits.shape, latent_dim=5, hidden_sizes=(32,)), seed=0)
    ev = evaluate(model, digits, iwae_k=10, seed=0, batch_size=300)  # several batches, a partial last one
    assert ev.n == digits.n and ev.iwae_k == 10 and len(ev.kl_per_dim) == 5
    assert ev.elbo == pytest.approx(-(ev.reconstruction + ev.kl), abs=1e-9)
    assert ev.kl == pytest.approx(sum(ev.kl_per_dim)) and ev.kl >= 0 and min(ev.kl_per_dim) >= 0
    assert ev.iwae > ev.elbo  # L_10 vs the closed-form-KL ELBO, averaged over 1797 images
    assert evaluate(model, digits, iwae_k=10, seed=0, batch_size=300) == ev  # seeded: same numbers
    assert evaluate(model, digits, iwae_k=0).iwae is None


def test_evaluation_matches_a_direct_computation(digits):
    model = build_model(ModelConfig(input_shape=digits.shape, latent_dim=3, hidden_sizes=(16,)), seed=1)
    x = torch.from_numpy(digits.images[:200])
    ev = evaluate(model, x.numpy(), seed=4)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        z = model.reparameterize(mu, logvar, torch.Generator().manual_seed(4))
        recon = -likelihood("bernoulli").log_prob(x, model.decode(z)).mean().item()
        kl = kl_per_dim(mu, logvar).sum(1).mean().item()
    assert ev.reconstruction == pytest.approx(recon, rel=1e-5) and ev.kl == pytest.approx(kl, rel=1e-5)


def test_encode_dataset_in_small_batches_equals_one_big_batch(digits):
    model = build_model(ModelConfig(input_shape=digits.shape, latent_dim=4, hidden_sizes=(32,)), seed=2)
    mu_small, logvar_small = encode_dataset(model, digits, batch_size=7)
    mu_big, logvar_big = encode_dataset(model, digits, batch_size=4096)
    assert mu_small.shape == logvar_small.shape == (digits.n, 4)
    np.testing.assert_allclose(mu_small, mu_big, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logvar_small, logvar_big, rtol=1e-5, atol=1e-6)


def test_encode_dataset_reads_a_memory_mapped_npy_batch_by_batch(digits, tmp_path):
    np.save(tmp_path / "digits.npy", digits.images[:, 0])
    mapped = load_array(tmp_path / "digits.npy", mmap=True)
    assert isinstance(mapped.images, np.memmap)
    model = build_model(ModelConfig(input_shape=digits.shape, latent_dim=4, hidden_sizes=(32,)), seed=2)
    np.testing.assert_allclose(encode_dataset(model, mapped, batch_size=100)[0], encode_dataset(model, digits)[0],
                               rtol=1e-5, atol=1e-6)


def test_active_units_counts_dimensions_whose_means_vary():
    rng = np.random.default_rng(0)
    mu = np.column_stack([rng.normal(0, 1, 500), rng.normal(0, 0.5, 500), rng.normal(3, 0.01, 500), np.zeros(500)])
    assert active_units(mu) == 2  # variance 1 and 0.25 are above 0.01; 1e-4 and 0 are not
    assert active_units(mu[:1]) == 0


# ---------------------------------------------------------------- MIG

def test_mig_is_near_one_when_the_code_is_the_factors(shapes):
    f = shapes.factors
    assert mig(f, f) > 0.95
    assert mig(f[:, ::-1] * 3.0 + 1.0, f) == pytest.approx(mig(f, f))  # order and scale of latents do not matter


def test_mig_is_near_zero_for_a_random_code(shapes):
    code = np.random.default_rng(0).normal(size=(shapes.n, 5))
    assert 0 <= mig(code, shapes.factors) < 0.05


def test_mig_drops_when_two_latents_share_a_factor(shapes):
    f = shapes.factors
    duplicated = np.column_stack([f, f[:, 0]])  # the shape factor is coded twice: its gap is 0
    assert mig(duplicated, f) == pytest.approx(mig(f, f) * 4 / 5, abs=0.02)


def test_mig_of_a_briefly_trained_shapes_model_is_in_unit_interval(shapes):
    config = ModelConfig(input_shape=shapes.shape, latent_dim=4, hidden_sizes=(64,))
    job = TrainingJob(shapes, config, TrainConfig(epochs=1, batch_size=64, lr=2e-3, seed=0), threads=1).start()
    assert job.join(timeout=120) and job.state == "finished", job.error
    mu, _ = encode_dataset(job.model_snapshot(), shapes)
    assert 0.0 <= mig(mu, shapes.factors) <= 1.0


def test_mig_needs_two_latents(shapes):
    with pytest.raises(ValueError, match="2 latent"):
        mig(shapes.factors[:, :1], shapes.factors)


def test_kl_vanishing_when_most_dimensions_collapse():
    assert collapsed_dims([0.01, 0.02, 3.0]) == 2
    assert kl_vanishing([0.01, 0.02, 3.0]) and not kl_vanishing([0.01, 2.0, 3.0]) and not kl_vanishing([])
