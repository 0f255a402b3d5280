"""Attribute vectors (latent-space arithmetic, White 2016; Larsen et al. 2016): the difference between the mean codes
of two groups of images — digit 3 -> 8, square -> heart, small -> large — along which z can be moved; and, for data
with generating factors, how each factor's direction lines up with the latent axes (beside MIG, metrics.mig)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TERCILE = 1 / 3  # a continuous factor's groups: its lowest and highest third


@dataclass
class AttributeVector:
    direction: np.ndarray  # (D,) mean code of group B minus mean code of group A
    mean_a: np.ndarray  # (D,)
    mean_b: np.ndarray  # (D,)
    n_a: int
    n_b: int


def attribute_vector(mu: np.ndarray, in_a: np.ndarray, in_b: np.ndarray) -> AttributeVector:
    """The mean code of the rows in B minus that of the rows in A (boolean masks over mu's rows)."""
    in_a, in_b = np.asarray(in_a, bool), np.asarray(in_b, bool)
    if not in_a.any() or not in_b.any():
        raise ValueError(f"each group needs at least one image (A has {int(in_a.sum())}, B has {int(in_b.sum())})")
    mu = np.asarray(mu, np.float64)
    mean_a, mean_b = mu[in_a].mean(0), mu[in_b].mean(0)
    return AttributeVector(mean_b - mean_a, mean_a, mean_b, int(in_a.sum()), int(in_b.sum()))


def tercile_groups(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """A continuous factor's lowest and highest third (masks) and the two cut points."""
    values = np.asarray(values, np.float64)
    lo, hi = np.quantile(values, [TERCILE, 1 - TERCILE])
    return values <= lo, values >= hi, (float(lo), float(hi))


def factor_groups(values: np.ndarray, max_classes: int = 12) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The directions a factor defines, as (name, in_a, in_b): a factor with few values gives one per value (that
    value against the rest); a continuous one gives low third -> high third."""
    values = np.asarray(values)
    levels = np.unique(values)
    if len(levels) <= max_classes:
        return [(f"{level:g}", values != level, values == level) for level in levels]
    low, high, _ = tercile_groups(values)
    return [("low -> high", low, high)]


def axis_alignment(directions: np.ndarray) -> np.ndarray:
    """Cosine between each direction (K, D) and each latent axis e_d: direction[d] / |direction|. (K, D), in [-1, 1];
    a factor captured by one latent has a single entry near +-1 in its row."""
    directions = np.atleast_2d(np.asarray(directions, np.float64))
    norms = np.linalg.norm(directions, axis=1, keepdims=True)
    return np.divide(directions, norms, out=np.zeros_like(directions), where=norms > 0)


def factor_alignment(mu: np.ndarray, factors: np.ndarray, names: list[str],
                     value_names: dict[int, list[str]] | None = None) -> tuple[list[str], np.ndarray]:
    """Every factor direction (factor_groups) against the latent axes: (row labels, (K, D) cosines). value_names
    names a categorical factor's values (e.g. {0: ["square", ...]} for shapes)."""
    labels, directions = [], []
    for k, name in enumerate(names):
        for group, in_a, in_b in factor_groups(factors[:, k]):
            if value_names and k in value_names and group != "low -> high":
                group = value_names[k][int(float(group))]
            labels.append(f"{name}: {group}")
            directions.append(attribute_vector(mu, in_a, in_b).direction)
    return labels, axis_alignment(np.array(directions))
