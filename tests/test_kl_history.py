"""KL per dimension over time (Train's heatmap): bins against a plain loop, and a real job's numbers against torch."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.distributions import Normal, kl_divergence

from vae_core.config import ModelConfig, TrainConfig
from vae_core.kl_history import kl_over_time
from vae_core.jobs import TrainingJob

SMALL = ModelConfig(input_shape=(1, 8, 8), latent_dim=3, hidden_sizes=(32,))


def step_rows(n: int, d: int = 3, seed: int = 0) -> list[dict]:
    kl = np.random.default_rng(seed).gamma(1.0, 1.0, (n, d))
    return [{"step": 2 * (i + 1), "kl_per_dim": kl[i].tolist()} for i in range(n)]


def binned_by_loop(rows: list[dict], columns: int) -> tuple[list[int], list[list[float]]]:
    """The reference: consecutive bins of ceil(n / columns) rows, each averaged by hand, placed at its last step."""
    k = -(-len(rows) // columns)
    xs, cols = [], []
    for start in range(0, len(rows), k):
        chunk = rows[start:start + k]
        xs.append(chunk[-1]["step"])
        cols.append([sum(r["kl_per_dim"][d] for r in chunk) / len(chunk) for d in range(len(chunk[0]["kl_per_dim"]))])
    return xs, cols


@pytest.mark.parametrize("n, columns", [(7, 200), (200, 200), (201, 200), (1000, 64), (999, 10)])
def test_steps_are_binned_means_of_consecutive_rows(n, columns):
    rows = step_rows(n)
    out = kl_over_time(rows, [], "step", columns)
    xs, cols = binned_by_loop(rows, columns)
    assert out.kl.shape == (3, len(xs)) and len(xs) <= columns
    np.testing.assert_array_equal(out.x, xs)
    np.testing.assert_allclose(out.kl.T, cols, rtol=1e-12)
    assert out.rows_per_column == -(-n // columns)


def test_epochs_are_the_validation_kl_of_each_epoch():
    epochs = [{"epoch": e, "step": 10 * e, "val_kl_per_dim": [e, 0.0, 2.0 * e]} for e in (1, 2, 3)]
    out = kl_over_time([], epochs, "epoch")
    np.testing.assert_array_equal(out.x, [1, 2, 3])
    np.testing.assert_array_equal(out.kl, [[1, 2, 3], [0, 0, 0], [2, 4, 6]])


def test_no_history_yet_and_bad_arguments():
    assert kl_over_time([], [], "step") is None and kl_over_time([], [], "epoch") is None
    with pytest.raises(ValueError, match="axis"):
        kl_over_time([], [], "time")
    with pytest.raises(ValueError, match="columns"):
        kl_over_time(step_rows(3), [], "step", 0)


def test_a_real_runs_heatmap_holds_torchs_kl_of_each_dimension(digits):
    """One epoch trained: the epoch column is torch's KL(q(z|x) || N(0, I)) per dimension over the validation images,
    and the step columns sum to each step's logged total KL."""
    job = TrainingJob(digits, SMALL, TrainConfig(epochs=1, batch_size=128, lr=3e-3, seed=0), threads=1).start()
    assert job.join(timeout=60)
    history = job.history()
    by_epoch = kl_over_time(history["steps"], history["epochs"], "epoch")
    model = job.model_snapshot()
    with torch.no_grad():
        mu, logvar = model.encode(torch.from_numpy(digits.batch(job.val_idx)))
    q = Normal(mu.double(), torch.exp(0.5 * logvar.double()))
    reference = kl_divergence(q, Normal(torch.zeros_like(q.loc), torch.ones_like(q.scale))).mean(0)  # (D,)
    np.testing.assert_allclose(by_epoch.kl[:, -1], reference.numpy(), rtol=1e-4, atol=1e-5)

    by_step = kl_over_time(history["steps"], history["epochs"], "step", columns=len(history["steps"]))
    np.testing.assert_allclose(by_step.kl.sum(0), [r["kl"] for r in history["steps"]], rtol=1e-5)
    assert by_step.x[-1] == history["steps"][-1]["step"]
