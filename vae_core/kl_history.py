"""KL per latent dimension over time, from a run's history: the matrix behind Train's heatmap (dimension x time).

By step it is the training KL of each dimension (the minibatch's, as logged every step), averaged over consecutive
rows so that at most `columns` columns remain; by epoch it is the validation KL of each dimension at each epoch's
end (exact, one column per epoch). Units switching on, collapsing or reviving (warm-up, free bits) show as rows
that light up or go dark.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AXES = ("step", "epoch")


@dataclass
class KLOverTime:
    x: np.ndarray  # (T,) the step (last step of each bin) or the epoch of each column
    kl: np.ndarray  # (D, T) nats per image, dimension d at time t
    axis: str  # "step" or "epoch"
    source: str  # what the numbers are, for the chart's title
    rows_per_column: int  # history rows averaged into one column (1 by epoch)


def kl_over_time(steps: list[dict], epochs: list[dict], axis: str = "step", columns: int = 200) -> KLOverTime | None:
    """The KL of every latent dimension at every logged time (None when the history has none yet).

    By step, rows are grouped into consecutive bins of equal size k = ceil(n / columns) (the last may be shorter),
    each column the mean of its rows and placed at its last row's step."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, got {axis!r}")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    if axis == "epoch":
        rows = [r for r in epochs if r.get("val_kl_per_dim")]
        if not rows:
            return None
        kl = np.array([r["val_kl_per_dim"] for r in rows], dtype=np.float64).T  # (D, E)
        return KLOverTime(np.array([r["epoch"] for r in rows]), kl, "epoch", "validation, end of each epoch", 1)
    rows = [r for r in steps if r.get("kl_per_dim")]
    if not rows:
        return None
    values = np.array([r["kl_per_dim"] for r in rows], dtype=np.float64)  # (n, D)
    step = np.array([r["step"] for r in rows])
    k = -(-len(rows) // columns)
    starts = np.arange(0, len(rows), k)
    sums = np.add.reduceat(values, starts, axis=0)  # (T, D)
    counts = np.diff(np.append(starts, len(rows)))[:, None]
    ends = np.minimum(starts + k, len(rows)) - 1
    source = "training minibatches" + (f", mean of {k} logged steps per column" if k > 1 else "")
    return KLOverTime(step[ends], (sums / counts).T, "step", source, k)
