"""vae_core.latent: paths and grids through z-space, the prior, per-dimension statistics, decoding."""
import numpy as np
import pytest
import torch

from vae_core.config import ModelConfig
from vae_core.latent import (aggregate_posterior_samples, decode, dims_by_kl, encode, kl_per_image, lerp, manifold_grid,
                             nearest_neighbours, posterior_samples, prior_log_density, prior_samples,
                             reconstruction_error, slerp, slider_ranges, traversal_grid)
from vae_core.likelihoods import likelihood
from vae_core.objective import kl_per_dim
from vae_core.jobs import build_model


def codes(n=120, d=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32) * np.arange(1, d + 1, dtype=np.float32)


def tiny_model(**kw):
    config = dict(input_shape=(1, 4, 4), latent_dim=3, hidden_sizes=(16, 8))
    config.update(kw)
    return build_model(ModelConfig(**config), seed=0)


# --------------------------------------------------------------------------- paths and grids


def test_slerp_has_exact_endpoints_and_follows_the_great_circle():
    rng = np.random.default_rng(2)
    z0, z1 = rng.normal(size=16).astype(np.float32), rng.normal(size=16).astype(np.float32)
    path = slerp(z0, z1, 9)
    assert path.shape == (9, 16)
    assert np.array_equal(path[0], z0) and np.array_equal(path[-1], z1)
    norms = np.linalg.norm(path, axis=1)
    np.testing.assert_allclose(norms, np.linspace(np.linalg.norm(z0), np.linalg.norm(z1), 9), rtol=1e-5)
    u0, u1 = z0 / np.linalg.norm(z0), z1 / np.linalg.norm(z1)
    omega = np.arccos(u0 @ u1)
    t = 0.25  # the definition: sin((1-t)w)/sin(w) u0 + sin(tw)/sin(w) u1, times the interpolated norm
    direction = (np.sin((1 - t) * omega) * u0 + np.sin(t * omega) * u1) / np.sin(omega)
    expected = direction * ((1 - t) * np.linalg.norm(z0) + t * np.linalg.norm(z1))
    np.testing.assert_allclose(slerp(z0, z1, 5)[1], expected, rtol=1e-5, atol=1e-6)


def test_slerp_keeps_the_norm_where_lerp_cuts_through_the_middle():
    z0, z1 = np.array([3.0, 0, 0], np.float32), np.array([0, 3.0, 0], np.float32)
    assert np.allclose(np.linalg.norm(slerp(z0, z1, 7), axis=1), 3.0)
    mid = lerp(z0, z1, 3)[1]
    assert np.isclose(np.linalg.norm(mid), 3 / np.sqrt(2))
    assert prior_log_density(mid[None])[0] > prior_log_density(slerp(z0, z1, 3)[1][None])[0]
    np.testing.assert_array_equal(lerp(z0, z1, 4)[[0, -1]], np.stack([z0, z1]))
    np.testing.assert_allclose(slerp(np.zeros(3), z1, 3), lerp(np.zeros(3), z1, 3))  # no direction at 0: a line


def test_traversal_grid_sweeps_one_dimension_per_row_and_holds_the_rest():
    z = np.array([0.5, -1.0, 2.0, 0.0], np.float32)
    ranges = np.array([[-1, 1], [-2, 2], [-3, 3], [-4, 4]], np.float32)
    grid = traversal_grid(z, [2, 0], ranges, 5)
    assert grid.shape == (2, 5, 4)
    np.testing.assert_allclose(grid[0, :, 2], np.linspace(-3, 3, 5))
    np.testing.assert_allclose(grid[1, :, 0], np.linspace(-1, 1, 5))
    held = np.ones((2, 5, 4), bool)
    held[0, :, 2] = held[1, :, 0] = False
    np.testing.assert_array_equal(grid[held], np.broadcast_to(z, (2, 5, 4))[held])


def test_manifold_grid_covers_two_dimensions_like_a_plot():
    z = np.array([9.0, 9.0, 9.0], np.float32)
    ranges = np.array([[-1, 1], [-2, 2], [0, 4]], np.float32)
    grid = manifold_grid(z, (0, 2), ranges, 3)
    assert grid.shape == (3, 3, 3)
    np.testing.assert_allclose(grid[0, 0], [-1, 9, 4])  # top-left: low x, high y
    np.testing.assert_allclose(grid[-1, -1], [1, 9, 0])  # bottom-right: high x, low y
    assert np.all(grid[..., 1] == 9)
    with pytest.raises(ValueError):
        manifold_grid(z, (1, 1), ranges, 3)


def test_nearest_neighbours_match_brute_force():
    z = codes(n=60, d=3)
    query = np.array([0.1, -0.3, 1.0], np.float32)
    idx, dist = nearest_neighbours(query, z, 7)
    brute = np.argsort(np.linalg.norm(z - query, axis=1), kind="stable")[:7]
    np.testing.assert_array_equal(idx, brute)
    np.testing.assert_allclose(dist, np.linalg.norm(z[brute] - query, axis=1), rtol=1e-5)
    own, d0 = nearest_neighbours(z[11], z, 1)
    assert own[0] == 11 and d0[0] == 0
    assert len(nearest_neighbours(query, z[:3], 10)[0]) == 3


# --------------------------------------------------------------------------- the prior and the aggregate posterior


def test_prior_samples_are_seeded_and_scaled_by_temperature():
    a, b = prior_samples(4000, 3, 1.0, seed=5), prior_samples(4000, 3, 1.0, seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, prior_samples(4000, 3, 1.0, seed=6))
    np.testing.assert_allclose(prior_samples(4000, 3, 0.5, seed=5), 0.5 * a, rtol=1e-6)
    assert abs(a.std() - 1) < 0.05 and np.all(prior_samples(3, 2, 0.0) == 0)
    with pytest.raises(ValueError):
        prior_samples(1, 2, -1.0)


def test_prior_log_density_matches_torch():
    z = codes(n=10, d=4)
    expected = torch.distributions.Normal(0.0, 1.0).log_prob(torch.as_tensor(z)).sum(1).numpy()
    np.testing.assert_allclose(prior_log_density(z), expected, rtol=1e-5)


def test_aggregate_posterior_samples_come_from_the_data_codes():
    mu = np.array([[10.0, 0.0], [-10.0, 0.0]], np.float32)
    tight = np.full_like(mu, -30.0)  # sigma ~ 3e-7: samples sit on the means
    samples = aggregate_posterior_samples(mu, tight, 200, seed=1)
    assert samples.shape == (200, 2)
    assert set(np.round(samples[:, 0]).astype(int)) == {10, -10}
    np.testing.assert_array_equal(samples, aggregate_posterior_samples(mu, tight, 200, seed=1))
    ranges = slider_ranges(samples)
    np.testing.assert_allclose(ranges[:, 0], np.percentile(samples, 1, axis=0), rtol=1e-6)
    assert ranges.shape == (2, 2) and np.all(ranges[:, 1] > ranges[:, 0])


def test_kl_statistics_match_the_objective_and_order_collapsed_dimensions_last():
    rng = np.random.default_rng(3)
    mu = rng.normal(size=(100, 4)).astype(np.float32) * [2.0, 0.0, 1.0, 0.01]
    logvar = np.zeros_like(mu)
    logvar[:, 0] = -2.0
    order = dims_by_kl(mu, logvar)
    kl = kl_per_dim(torch.as_tensor(mu), torch.as_tensor(logvar)).mean(0).numpy()
    np.testing.assert_allclose(order.kl, kl, rtol=1e-6)
    assert order.order == [0, 2, 3, 1] and list(order.collapsed) == [False, True, False, True]
    q = torch.distributions.Normal(torch.as_tensor(mu), torch.exp(0.5 * torch.as_tensor(logvar)))
    p = torch.distributions.Normal(0.0, 1.0)
    np.testing.assert_allclose(kl_per_image(mu, logvar), torch.distributions.kl_divergence(q, p).sum(1), rtol=1e-5)


# --------------------------------------------------------------------------- encoding and decoding


def test_encode_and_reconstruction_error_agree_with_the_model():
    model = tiny_model()
    x = np.random.default_rng(4).random((20, 1, 4, 4)).astype(np.float32)
    z, mu, logvar = encode(model, x)
    np.testing.assert_array_equal(z, mu)
    with torch.no_grad():
        mu_t, logvar_t = model.encode(torch.as_tensor(x))
        nll = -likelihood("bernoulli").log_prob(torch.as_tensor(x), model.decode(mu_t)).numpy()
    np.testing.assert_allclose(mu, mu_t.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reconstruction_error(model, x, mu), nll, rtol=1e-5)
    sampled, _, _ = encode(model, x, sample=True, seed=1)
    np.testing.assert_array_equal(sampled, posterior_samples(mu, logvar, seed=1))
    assert not np.allclose(sampled, mu)


def test_decode_keeps_leading_dimensions():
    model = tiny_model()
    images = decode(model, np.zeros((2, 5, 3), np.float32))
    assert images.shape == (2, 5, 1, 4, 4) and images.min() >= 0 and images.max() <= 1
