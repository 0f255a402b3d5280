"""Attribute vectors against a loop over the groups, and factor-to-axis alignment against torch's cosine similarity
and a code built from the factors (beside MIG)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vae_core.attributes import attribute_vector, axis_alignment, factor_alignment, factor_groups, tercile_groups
from vae_core.data import make_shapes
from vae_core.metrics import mig


def test_the_vector_is_the_difference_of_the_groups_mean_codes():
    rng = np.random.default_rng(0)
    mu, labels = rng.normal(size=(200, 6)), rng.integers(0, 4, 200)
    out = attribute_vector(mu, labels == 1, labels == 3)
    mean = lambda rows: [sum(r[d] for r in rows) / len(rows) for d in range(6)]  # noqa: E731  (by hand)
    a, b = mean([m for m, l in zip(mu, labels) if l == 1]), mean([m for m, l in zip(mu, labels) if l == 3])
    np.testing.assert_allclose(out.direction, np.subtract(b, a), rtol=1e-12)
    assert (out.n_a, out.n_b) == ((labels == 1).sum(), (labels == 3).sum())
    with pytest.raises(ValueError, match="at least one image"):
        attribute_vector(mu, labels == 9, labels == 3)


def test_groups_of_a_factor():
    values = np.arange(90, dtype=float)
    low, high, (lo, hi) = tercile_groups(values)
    assert low.sum() == 30 and high.sum() == 30 and values[low].max() <= lo < hi <= values[high].min()
    assert [name for name, *_ in factor_groups(values)] == ["low -> high"]
    classes = factor_groups(np.array([0, 1, 2, 1, 0]))
    assert [name for name, *_ in classes] == ["0", "1", "2"]
    np.testing.assert_array_equal(classes[1][2], [False, True, False, True, False])


def test_alignment_is_the_cosine_with_each_axis_as_torch_computes_it():
    directions = np.random.default_rng(2).normal(size=(5, 7))
    eye = torch.eye(7, dtype=torch.float64)
    reference = torch.stack([torch.nn.functional.cosine_similarity(torch.from_numpy(v)[None], eye) for v in directions])
    np.testing.assert_allclose(axis_alignment(directions), reference.numpy(), rtol=1e-12)
    np.testing.assert_array_equal(axis_alignment(np.zeros((1, 3))), [[0, 0, 0]])  # no direction: no alignment


def test_a_code_made_of_the_factors_aligns_each_factor_with_its_own_axis():
    """Codes = the shapes' continuous factors on permuted axes (plus noise): each factor's row of the alignment
    is one-hot on its axis, and MIG is high; mixing the axes lowers both."""
    shapes = make_shapes(n=3000, size=8, seed=0)
    continuous = shapes.factors[:, 1:]  # scale, rotation, pos_x, pos_y
    perm = [2, 0, 3, 1]
    noise = np.random.default_rng(0).normal(0, 0.01, (3000, 4))
    codes = np.zeros((3000, 4))
    codes[:, perm] = (continuous - continuous.mean(0)) / continuous.std(0)
    codes += noise
    labels, cos = factor_alignment(codes, continuous, ["scale", "rotation", "pos_x", "pos_y"])
    assert labels == ["scale: low -> high", "rotation: low -> high", "pos_x: low -> high", "pos_y: low -> high"]
    np.testing.assert_array_equal(np.abs(cos).argmax(1), perm)
    assert np.all(np.abs(cos[np.arange(4), perm]) > 0.99)
    mixed = codes @ np.linalg.qr(np.random.default_rng(1).normal(size=(4, 4)))[0]
    _, cos_mixed = factor_alignment(mixed, continuous, ["scale", "rotation", "pos_x", "pos_y"])
    assert np.abs(cos_mixed).max(1).mean() < np.abs(cos).max(1).mean() - 0.1
    assert mig(mixed, continuous) < mig(codes, continuous)


def test_a_categorical_factor_gives_one_direction_per_value_named():
    rng = np.random.default_rng(3)
    shape = rng.integers(0, 4, 400).astype(np.float32)
    codes = np.eye(4)[shape.astype(int)] + rng.normal(0, 0.05, (400, 4))
    labels, cos = factor_alignment(codes, shape[:, None], ["shape"], {0: ["square", "ellipse", "triangle", "heart"]})
    assert labels == ["shape: square", "shape: ellipse", "shape: triangle", "shape: heart"]
    np.testing.assert_array_equal(cos.argmax(1), [0, 1, 2, 3])  # heart vs the rest points along z3
