"""UMAP as a projection (the optional umap-learn): a seeded, subsampled fit that keeps the codes' neighbourhoods
(scikit-learn's trustworthiness as the reference), new codes placed by their nearest fitted codes as for t-SNE, the
Explore page offering it only when installed. The fits are slow the first time (numba compiles): marked slow."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.manifold import trustworthiness

from tests.test_explore_page import explore, parts, runs  # noqa: F401  (fixtures: Explore on seeded runs)
from vae_core import latent, projections
from vae_core.projections import Projection


def test_without_umap_learn_the_fit_says_what_to_install(monkeypatch):
    monkeypatch.setattr(projections, "installed", lambda module: False)
    with pytest.raises(ValueError, match="requirements-umap.txt"):
        Projection("umap").fit(np.random.default_rng(0).normal(size=(50, 3)))


def test_explore_offers_umap_only_when_it_is_installed(explore, monkeypatch):  # noqa: F811
    monkeypatch.setattr(projections, "installed", lambda module: False)
    assert "UMAP" not in explore("8d").selectbox(key="w_explore_method").options
    monkeypatch.setattr(projections, "installed", lambda module: True)
    assert "UMAP" in explore("8d").selectbox(key="w_explore_method").options


@pytest.mark.slow
def test_umap_keeps_neighbourhoods_and_places_new_codes_like_tsne():
    pytest.importorskip("umap")
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (5, 6))
    codes = (centres[rng.integers(0, 5, 400)] + rng.normal(0, 0.5, (400, 6))).astype(np.float32)
    proj = Projection("umap", max_points=300, umap_neighbours=15, seed=0).fit(codes)
    assert len(proj.rows_) == 300 and proj.embedding_.shape == (300, 2) and not proj.exact
    assert trustworthiness(proj.codes_, proj.embedding_, n_neighbors=10) > 0.9
    again = Projection("umap", max_points=300, umap_neighbours=15, seed=0).fit(codes)
    np.testing.assert_allclose(again.embedding_, proj.embedding_, atol=1e-4)  # seeded: the same map
    np.testing.assert_allclose(proj.transform(codes[proj.rows_[:5]]), proj.embedding_[:5], atol=1e-3)
    new = proj.transform(codes[[0]] + 0.01)[0]
    idx = latent.nearest_neighbours(codes[0] + 0.01, proj.codes_, proj.n_neighbours)[0]
    assert np.all(new >= proj.embedding_[idx].min(0) - 1e-6) and np.all(new <= proj.embedding_[idx].max(0) + 1e-6)


@pytest.mark.slow
def test_explore_draws_a_umap_map_with_the_codes_for_placing_z(explore):  # noqa: F811
    pytest.importorskip("umap")
    at = explore("8d")
    at.selectbox(key="w_explore_method").set_value("umap").run()
    assert not at.exception and "map" not in parts(at)  # its settings come first: nothing is fitted before Fit
    at.button(key="explore_fit").click().run()
    assert not at.exception
    view, assets = parts(at)["map"]
    umap_map = next(a for a in assets.values() if a.kind == "map")
    assert umap_map.meta["method"] == "umap" and umap_map.meta["x_title"] == "UMAP 1" and not umap_map.meta["exact"]
    assert umap_map.arrays["codes"].size == umap_map.arrays["xy"].size // 2 * 8  # every drawn point's code
    assert "UMAP has no map for new points" in " ".join(c.value for c in at.caption)
