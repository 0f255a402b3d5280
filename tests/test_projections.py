"""vae_core.projections: the family's table (one entry per method, unknown names refused with the known ones) and
each method against a reference: latent axes exactly, PCA against the covariance's eigenvectors, t-SNE's placement
of new codes among its fitted ones; the cache key of a fitted projection."""
import inspect
import json

import numpy as np
import pytest

from vae_core.projections import METHODS, Projection, default_method, methods_for, projection_key, projection_method


def codes(n=120, d=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32) * np.arange(1, d + 1, dtype=np.float32)


def test_identity_projection_is_the_chosen_axes_exactly():
    z = codes()
    proj = Projection("identity", dims=(3, 1)).fit(z)
    assert proj.embedding_.shape == (120, 2) and proj.exact
    np.testing.assert_array_equal(proj.embedding_, z[:, [3, 1]])
    np.testing.assert_array_equal(proj.transform(z[:4]), z[:4, [3, 1]])
    with pytest.raises(ValueError):
        Projection("identity", dims=(2, 2)).fit(z)


def test_pca_matches_the_covariance_eigenvectors_and_explained_variance():
    z = codes()
    proj = Projection("pca").fit(z)
    assert proj.embedding_.shape == (120, 2)
    evals, evecs = np.linalg.eigh(np.cov(z.T, ddof=0))
    top = np.argsort(evals)[::-1][:2]
    np.testing.assert_allclose(np.abs(proj.components_ @ evecs[:, top]), np.eye(2), atol=1e-4)
    np.testing.assert_allclose(proj.explained_variance_ratio_, evals[top] / evals.sum(), rtol=1e-4)
    np.testing.assert_allclose(proj.embedding_.var(0), evals[top], rtol=1e-3)  # variance along each axis


def test_pca_inverse_recovers_codes_in_the_plane_and_projects_the_rest():
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(6, 2)))[0].T  # (2, 6) orthonormal
    planar = (rng.normal(size=(50, 2)) * [3, 1]) @ basis + 5.0
    proj = Projection("pca").fit(planar.astype(np.float32))
    np.testing.assert_allclose(proj.inverse_transform(proj.transform(planar)), planar, atol=1e-4)
    general = codes(d=6)
    back = Projection("pca").fit(general)
    residual = general - back.inverse_transform(back.transform(general))
    np.testing.assert_allclose(residual @ back.components_.T, 0, atol=1e-3)  # what is lost is orthogonal to the plane
    with pytest.raises(ValueError):
        Projection("identity").fit(general).inverse_transform(np.zeros((1, 2)))


def test_tsne_subsamples_above_max_points_and_places_fitted_codes_on_themselves():
    z = codes(n=100, d=4)
    proj = Projection("tsne", max_points=60, perplexity=10, iterations=250, seed=0).fit(z)
    assert len(proj.rows_) == 60 and len(set(proj.rows_)) == 60 and proj.embedding_.shape == (60, 2)
    assert not proj.exact
    np.testing.assert_allclose(proj.transform(z[proj.rows_[:5]]), proj.embedding_[:5], atol=1e-3)
    new = proj.transform(z[[0]] + 0.01)[0]  # a new code lands inside the hull of its neighbours' positions
    assert proj.embedding_.min(0)[0] <= new[0] <= proj.embedding_.max(0)[0]


def test_projection_rejects_unknown_methods_and_too_few_codes():
    with pytest.raises(ValueError, match="method"):
        Projection("isomap").fit(codes())
    with pytest.raises(ValueError):
        Projection("pca").fit(codes(n=1))


def test_projection_key_names_model_file_data_method_and_params():
    key = projection_key("/runs/a", 1.0, {"kind": "digits"}, "tsne", {"perplexity": 30, "max_points": 2000})
    assert key == projection_key("/runs/a", 1.0, {"kind": "digits"}, "tsne", {"max_points": 2000, "perplexity": 30})
    others = [projection_key("/runs/b", 1.0, {"kind": "digits"}, "tsne", {"perplexity": 30, "max_points": 2000}),
              projection_key("/runs/a", 2.0, {"kind": "digits"}, "tsne", {"perplexity": 30, "max_points": 2000}),
              projection_key("/runs/a", 1.0, {"kind": "shapes"}, "tsne", {"perplexity": 30, "max_points": 2000}),
              projection_key("/runs/a", 1.0, {"kind": "digits"}, "pca", {"perplexity": 30, "max_points": 2000}),
              projection_key("/runs/a", 1.0, {"kind": "digits"}, "tsne", {"perplexity": 5, "max_points": 2000})]
    assert len({key, *others}) == 6
    assert isinstance(hash(key), int) and json.loads(key)["method"] == "tsne"


# --------------------------------------------------------------------------- the table


def test_an_unknown_method_is_refused_with_the_known_ones():
    with pytest.raises(ValueError) as caught:
        projection_method("isomap")
    assert all(repr(name) in str(caught.value) for name in METHODS)
    with pytest.raises(ValueError, match="'pca'"):
        Projection("isomap").exact


def test_the_tables_parameter_defaults_are_the_estimators():
    """The page starts each setting at its table default; a Projection made without it must fit the same map."""
    signature = inspect.signature(Projection.__init__).parameters
    for method in METHODS.values():
        for param in method.params:
            assert signature[param.name].default == param.default, (method.name, param.name)


@pytest.mark.parametrize("name", [m.name for m in METHODS.values() if m.linear])
def test_a_linear_method_is_y_equals_a_z_minus_m_and_a_drag_along_a_rows_lands_where_dragged(name):
    """What the posterior ellipses and the browser's star (map.js place, moveInPlane) rely on."""
    z = codes(d=6)
    proj = Projection(name, dims=(4, 1)).fit(z)
    a, m = proj.components_.astype(np.float64), proj.mean_.astype(np.float64)
    np.testing.assert_allclose(proj.transform(z[:7]), (z[:7] - m) @ a.T, atol=1e-4)
    np.testing.assert_allclose(a @ a.T, np.eye(2), atol=1e-6)  # orthonormal rows
    target = proj.transform(z[:1])[0] + [0.5, -2.0]
    moved = z[0] + a.T @ (target - proj.transform(z[:1])[0])  # the browser's drag
    np.testing.assert_allclose(proj.transform(moved[None])[0], target, atol=1e-4)
    assert proj.exact and proj.spec.exact


def test_the_methods_offered_need_their_dimensions_and_their_package(monkeypatch):
    from vae_core import projections

    assert "identity" not in [m.name for m in methods_for(1)] and "identity" in [m.name for m in methods_for(2)]
    assert default_method(2) == "identity" and default_method(8) == "pca" and default_method(1) == "pca"
    monkeypatch.setattr(projections, "installed", lambda module: False)
    assert all(m.requires is None for m in methods_for(8))
    assert [m.name for m in methods_for(8)] == [m.name for m in METHODS.values() if m.requires is None]


def test_tsne_reports_its_progress_and_stops_when_asked():
    from vae_core.projections import FitStopped

    z = np.random.default_rng(0).normal(size=(120, 4)).astype(np.float32)
    seen = []
    Projection("tsne", perplexity=10, iterations=250, seed=0).fit(z, progress=lambda f: seen.append(f) and False)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == 250 // 10  # every 10 of 250 iterations
    asked = []
    with pytest.raises(FitStopped, match="stopped after 50 of 250 iterations"):
        Projection("tsne", perplexity=10, iterations=250, seed=0).fit(z, progress=lambda f: asked.append(f) or f >= 0.2)
    assert len(asked) == 5


def test_tsne_keeps_the_codes_neighbourhoods_on_real_digits():
    """openTSNE's map of real digits (scikit-learn's 8×8 images, 64-D) is as trustworthy as scikit-learn's own TSNE
    on the same codes with the same settings (both > 0.95; within 0.01 of each other)."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.manifold import TSNE, trustworthiness

    x = sk_digits().data[:600].astype(np.float32)
    ours = Projection("tsne", perplexity=30, iterations=500, seed=0).fit(x).embedding_
    theirs = TSNE(2, perplexity=30, init="pca", learning_rate="auto", max_iter=500, random_state=0).fit_transform(x)
    t_ours, t_theirs = trustworthiness(x, ours, n_neighbors=10), trustworthiness(x, theirs, n_neighbors=10)
    assert t_ours > 0.95 and t_theirs > 0.95 and abs(t_ours - t_theirs) < 0.01, (t_ours, t_theirs)
