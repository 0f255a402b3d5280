"""The map's placement maths in the browser (ui/explore/live/map_place.js), run by Node, against
vae_core.projections.Projection: where a code lands on the map for every method (the linear map y = A (z - m) of
latent axes and PCA; t-SNE's placement among its fitted codes), and where a dragged star moves z (it lands where it
was dropped, its off-plane part kept). tests/e2e/test_explore.py drags the star in Chromium."""
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vae_core.projections import Projection

DRIVER = Path(__file__).parent / "js" / "placement_driver.mjs"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed (the browser tests cover the map)")


def in_node(projection: Projection, zs: np.ndarray, drags: list) -> tuple[np.ndarray, np.ndarray]:
    """The browser's placement of zs and its drags, from the facts and arrays ui/explore/projection.py sends."""
    spec = projection.spec
    arrays = {"rows": projection.rows_, "xy": projection.embedding_.ravel()}
    if spec.linear:
        arrays |= {"mean": projection.mean_, "components": projection.components_.ravel()}
    if not spec.exact:
        arrays["codes"] = projection.codes_.ravel()
    meta = {"linear": spec.linear, "exact": spec.exact, "neighbours": projection.n_neighbours}
    payload = {"map": {"meta": meta, "arrays": {k: np.asarray(v, np.float64).tolist() for k, v in arrays.items()}},
               "zs": zs.tolist(), "drags": [[z.tolist(), float(x), float(y)] for z, x, y in drags]}
    done = subprocess.run([NODE, str(DRIVER)], input=json.dumps(payload), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    return np.asarray(out["placed"]), np.asarray(out["moved"], np.float64).reshape(len(drags), zs.shape[1])


def codes(n=150, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) * np.arange(1, d + 1)).astype(np.float32)


@pytest.mark.parametrize("method", ["identity", "pca"])
def test_the_browser_places_and_drags_z_like_the_linear_map(method):
    z = codes()
    projection = Projection(method, dims=(4, 1)).fit(z)
    new = codes(n=5, seed=1)
    drags = [(new[0], 1.5, -2.0), (new[1], 0.0, 0.0)]
    placed, moved = in_node(projection, new, drags)
    np.testing.assert_allclose(placed, projection.transform(new), atol=1e-4)
    np.testing.assert_allclose(projection.transform(moved), [[1.5, -2.0], [0.0, 0.0]], atol=1e-4)  # under the pointer
    a = projection.components_
    off_plane = lambda v: v - (v - projection.mean_) @ a.T @ a  # noqa: E731  (the part the drag must keep)
    np.testing.assert_allclose(off_plane(moved[0]), off_plane(new[0]), atol=1e-4)


def test_the_browser_places_z_among_the_tsne_codes_like_the_server():
    z = codes(n=80, d=4)
    projection = Projection("tsne", max_points=60, perplexity=10, iterations=250, seed=0).fit(z)
    new = np.concatenate([z[projection.rows_[:3]], z[[0]] + 0.05, codes(n=2, d=4, seed=2)])
    placed, _ = in_node(projection, new, [])
    np.testing.assert_allclose(placed, projection.transform(new), atol=1e-3)
