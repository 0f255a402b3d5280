"""The map's spatial index in the browser (ui/explore/live/map_index.js), run by Node, against brute force over every
point: the nearest point within a pixel radius (hover and click: anisotropic pixels per unit, points hidden by the
legend skipped, ties to the lower index, exact duplicates) and the points inside a rectangle (box and lasso selection).
tests/e2e/test_explore.py hovers and box-selects a 100,000-point map in Chromium."""
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

DRIVER = Path(__file__).parent / "js" / "index_driver.mjs"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed (the browser tests cover the map)")


def in_node(xy: np.ndarray, queries: np.ndarray, boxes: np.ndarray, hidden: np.ndarray) -> dict:
    payload = {"xy": xy.ravel().tolist(), "queries": queries.tolist(), "boxes": boxes.tolist(),
               "hidden": hidden.tolist()}
    done = subprocess.run([NODE, str(DRIVER)], input=json.dumps(payload), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def brute_nearest(xy: np.ndarray, x, y, kx, ky, radius, hidden=frozenset()):
    """As the index promises: the lowest-index point at the least pixel distance, within radius (inclusive)."""
    d = ((xy[:, 0] - x) * kx) ** 2 + ((xy[:, 1] - y) * ky) ** 2
    d[list(hidden)] = np.inf
    best = int(np.argmin(d))  # argmin: the first of equal distances
    return best if d[best] <= radius * radius else None


def test_the_index_finds_what_brute_force_finds():
    rng = np.random.default_rng(0)
    clustered = np.concatenate([rng.normal(0, 0.05, (3000, 2)), rng.normal(3, 1.0, (6000, 2)),
                                rng.uniform(-5, 8, (1000, 2))])
    xy = np.concatenate([clustered, clustered[:50]]).astype(np.float32)  # exact duplicates: ties
    targets = np.concatenate([xy[rng.integers(0, len(xy), 150)], rng.uniform(-6, 9, (150, 2)).astype(np.float32)])
    scales = rng.choice([5.0, 40.0, 300.0, 4000.0], (len(targets), 2))  # zoomed out .. far in, unequal axes
    queries = np.column_stack([targets, scales, np.full(len(targets), 9.0)])
    boxes = np.array([[-0.1, 0.1, -0.1, 0.1], [2, 4, 1, 5], [8, -5, 9, -6], [0.5, 0.5001, 0.2, 0.3]])
    hidden = np.arange(0, len(xy), 3)
    got = in_node(xy, queries, boxes, hidden)
    xy64 = xy.astype(np.float64)
    # Node computes in doubles over the float32 positions: brute force does the same
    expect = [brute_nearest(xy64, *q) for q in queries]
    assert got["nearest"] == expect
    assert sum(e is not None for e in expect) > 100  # most queries hit a point, some miss
    assert got["nearest_shown"] == [brute_nearest(xy64, *q, hidden=set(hidden.tolist())) for q in queries]
    for (ax, bx, ay, by), picked in zip(boxes, got["in_box"]):
        lx, hx, ly, hy = min(ax, bx), max(ax, bx), min(ay, by), max(ay, by)
        inside = np.flatnonzero((xy64[:, 0] >= lx) & (xy64[:, 0] <= hx) & (xy64[:, 1] >= ly) & (xy64[:, 1] <= hy))
        assert picked == inside.tolist()
    assert len(got["in_box"][1]) > 1000
