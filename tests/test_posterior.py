"""Posterior uncertainty: samples of q(z|x) against mu and sigma, their decodes against torch, and the map's
mu +- 2 sigma ellipses against the projected samples' covariance."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vae_core.config import ModelConfig
from vae_core.posterior import (ellipse, posterior_decodes, posterior_ellipses, projected_covariance,
                                projection_matrix)
from vae_core.projections import Projection
from vae_core.jobs import build_model

SMALL = ModelConfig(input_shape=(1, 8, 8), latent_dim=4, hidden_sizes=(32,))


def test_samples_have_the_posteriors_mean_and_spread_and_decode_like_torch(digits):
    model = build_model(SMALL, seed=0)
    image = digits.batch(np.array([5]))[0]
    n = 20_000
    out = posterior_decodes(model, image, n, torch.Generator().manual_seed(3))
    with torch.no_grad():
        mu, logvar = (t[0] for t in model.encode(torch.from_numpy(image[None])))
    sigma = torch.exp(0.5 * logvar).numpy()
    np.testing.assert_allclose(out.mu, mu.numpy(), rtol=1e-6)
    np.testing.assert_allclose(out.sigma, sigma, rtol=1e-6)
    assert np.all(np.abs(out.z.mean(0) - out.mu) < 5 * sigma / np.sqrt(n))  # 5 standard errors
    np.testing.assert_allclose(out.z.std(0), sigma, rtol=0.03)
    assert abs(np.corrcoef(out.z.T)[0, 1]) < 0.05  # independent dimensions: q is diagonal
    with torch.no_grad():
        np.testing.assert_allclose(out.images[:50], model.decode_mean(torch.from_numpy(out.z[:50])).numpy(), atol=1e-6)
        np.testing.assert_allclose(out.mean_image, model.decode_mean(mu[None]).numpy()[0], atol=1e-6)
    again = posterior_decodes(model, image, 4, torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(again.z, out.z[:4])  # seeded: the same generator gives the same samples
    with pytest.raises(ValueError, match="at least one"):
        posterior_decodes(model, image, 0, torch.Generator())


@pytest.mark.parametrize("method", ["identity", "pca"])
def test_the_projected_covariance_is_that_of_the_projected_samples(method):
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(500, 5)) * [3, 2, 1, 0.5, 0.2]
    projection = Projection(method, dims=(1, 3)).fit(codes)
    mu, logvar = rng.normal(size=5), rng.normal(size=5)
    z = mu + np.exp(0.5 * logvar) * rng.normal(size=(200_000, 5))
    empirical = np.cov(projection.transform(z).T)
    (cov,) = projected_covariance(projection_matrix(projection, 5), logvar[None])
    np.testing.assert_allclose(cov, empirical, rtol=0.03, atol=3e-3)
    a = projection_matrix(projection, 5)
    np.testing.assert_allclose(cov, a @ np.diag(np.exp(logvar)) @ a.T, rtol=1e-12)


def test_the_ellipse_is_the_k_sigma_contour_around_the_projected_mean():
    rng = np.random.default_rng(1)
    codes = rng.normal(size=(300, 4))
    pca = Projection("pca").fit(codes)
    mu, logvar = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    rings = posterior_ellipses(pca, mu, logvar, k=2.0, points=40)
    assert rings.shape == (3, 40, 2)
    covs = projected_covariance(pca.components_, logvar)
    for ring, centre, cov in zip(rings, pca.transform(mu), covs):
        offsets = ring - centre
        mahalanobis = np.einsum("pi,ij,pj->p", offsets, np.linalg.inv(cov), offsets)
        np.testing.assert_allclose(mahalanobis, 4.0, rtol=1e-9)  # every point exactly 2 sigma away
        np.testing.assert_allclose(offsets.mean(0), 0, atol=1e-9)  # centred on the projected mean


def test_on_latent_axes_the_ellipse_spans_mu_plus_minus_two_sigma():
    ring = ellipse([1.0, -1.0], np.diag([0.25, 4.0]), k=2.0, points=400)
    np.testing.assert_allclose([ring[:, 0].min(), ring[:, 0].max()], [0.0, 2.0], atol=1e-3)  # 1 +- 2 * 0.5
    np.testing.assert_allclose([ring[:, 1].min(), ring[:, 1].max()], [-5.0, 3.0], atol=1e-3)  # -1 +- 2 * 2
    tsne = Projection("tsne", max_points=50, iterations=250)
    with pytest.raises(ValueError, match="linear projection"):
        projection_matrix(tsne, 4)
