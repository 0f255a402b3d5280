"""The training charts: TensorBoard's debiased EMA, loss traces for train and validation, KL bars, run overlays."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ui.charts import (MAX_POINTS, ema, history_frame, kl_bars_figure, loss_figure, overlay_figure, steps_per_epoch,
                       time_constant)


def tensorboard_smooth(values, weight):
    """TensorBoard's resampleSmoothing as written in its frontend (a reference, loop for loop)."""
    last, num_accum, out = 0.0, 0, []
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        num_accum += 1
        out.append(last / (1 - weight**num_accum) if weight != 1 else last)
    return out


def history(n_epochs=3, steps_per=5, beta=0.5):
    steps = [{"step": s, "epoch": (s - 1) // steps_per + 1, "total": 30.0 - s * 0.1, "recon": 20.0 - s * 0.1,
              "kl": 8.0, "beta_kl": beta * 8.0, "beta": beta, "lr": 1e-3, "samples_per_s": 1e4,
              "kl_per_dim": [4.0, 4.0, 0.0]} for s in range(1, n_epochs * steps_per + 1)]
    epochs = [{"epoch": e, "step": e * steps_per, "val_neg_elbo": 29.0 - e, "val_recon": 21.0 - e, "val_kl": 8.0,
               "active_units": 2, "val_kl_per_dim": [4.0, 4.0, 0.0], "time": 0.0} for e in range(1, n_epochs + 1)]
    return steps, epochs


@pytest.mark.parametrize("weight", [0.0, 0.3, 0.6, 0.99])
def test_ema_matches_tensorboard(weight):
    values = list(np.random.default_rng(0).normal(10, 3, 50)) + [float("nan")] + [1.0, 2.0]
    np.testing.assert_allclose(ema(values, weight), tensorboard_smooth(values, weight), equal_nan=True)


def test_ema_is_debiased_and_keeps_constants():
    assert ema([5.0], 0.9)[0] == pytest.approx(5.0)  # no pull towards 0 at the start
    np.testing.assert_allclose(ema([3.0] * 20, 0.95), 3.0)


def test_loss_figure_has_train_and_validation_traces_per_term():
    steps, epochs = history()
    fig = loss_figure(steps, epochs, smoothing=0.6)
    names = {t.name for t in fig.data if t.name}
    for label in ("reconstruction", "KL", "β·KL", "total (optimised)"):
        assert f"{label} · train" in names
    assert {"reconstruction · validation", "KL · validation", "β·KL · validation", "−ELBO · validation"} <= names
    val_beta_kl = next(t for t in fig.data if t.name == "β·KL · validation")
    np.testing.assert_allclose(val_beta_kl.y, [4.0, 4.0, 4.0])  # β at that epoch times the validation KL
    raw = [t for t in fig.data if not t.showlegend and t.showlegend is not None]
    assert len(raw) == 4  # a faint raw curve under each smoothed one


def test_loss_figure_x_by_epoch_is_fractional_and_log_y():
    steps, epochs = history(steps_per=5)
    fig = loss_figure(steps, epochs, smoothing=0.0, log_y=True, x_axis="epoch")
    train = next(t for t in fig.data if t.name == "reconstruction · train")
    np.testing.assert_allclose(train.x[:5], [0.2, 0.4, 0.6, 0.8, 1.0])
    assert list(next(t for t in fig.data if t.name == "−ELBO · validation").x) == [1, 2, 3]
    assert fig.layout.yaxis.type == "log" and fig.layout.xaxis.title.text == "epoch"
    assert steps_per_epoch(epochs) == 5


def test_loss_figure_before_any_epoch_and_when_empty():
    steps, _ = history(n_epochs=1)
    fig = loss_figure(steps[:3], [], x_axis="epoch")
    assert list(next(t for t in fig.data if t.name == "KL · train").x) == [1, 1, 1]
    assert len(loss_figure([], []).data) == 0


def test_long_curves_are_strided_but_smoothed_on_every_point():
    steps, epochs = history(n_epochs=1, steps_per=5 * MAX_POINTS)
    fig = loss_figure(steps, epochs, smoothing=0.9)
    train = next(t for t in fig.data if t.name == "total (optimised) · train")
    assert len(train.x) <= MAX_POINTS
    assert train.y[-1] == pytest.approx(ema([r["total"] for r in steps], 0.9)[len(steps) - 1 - (len(steps) - 1) % 5])


def test_kl_bars_sorted_with_collapsed_dimensions_grey():
    fig = kl_bars_figure([0.01, 2.0, 0.5, 0.0])
    bar = fig.data[0]
    assert list(bar.x) == ["z1", "z2", "z0", "z3"] and list(bar.y) == [2.0, 0.5, 0.01, 0.0]
    assert bar.marker.color[0] == bar.marker.color[1] != bar.marker.color[2] == bar.marker.color[3]


def test_overlay_one_trace_per_run_with_data():
    steps, epochs = history()
    runs = {"a": {"steps": steps, "epochs": epochs}, "b": {"steps": steps, "epochs": epochs[:1]}, "empty": {}}
    fig = overlay_figure(runs, "validation −ELBO")
    assert [t.name for t in fig.data] == ["a", "b"] and list(fig.data[1].y) == [28.0]
    fig = overlay_figure(runs, "training total", x_axis="step", smoothing=0.0)
    assert list(fig.data[0].y) == [r["total"] for r in steps]


def test_history_frame_spreads_kl_and_joins_epochs():
    steps, epochs = history()
    frame = history_frame({"steps": steps, "epochs": epochs})
    assert len(frame) == len(steps) and {"kl_z0", "kl_z2", "val_neg_elbo", "lr"} <= set(frame.columns)
    assert frame.loc[frame.step == 5, "val_neg_elbo"].item() == 28.0  # the epoch's row joined at its last step
    assert frame.loc[frame.step == 4, "val_neg_elbo"].isna().item()
    assert "epoch" in frame.columns and "kl_per_dim" not in frame.columns


def rows_of(steps, values) -> list[dict]:
    return [{"step": int(s), "epoch": 1, "total": float(v), "recon": float(v), "kl": 0.0, "beta_kl": 0.0, "beta": 1.0,
             "lr": 1e-3, "samples_per_s": 1.0, "kl_per_dim": [0.0]} for s, v in zip(steps, values)]


def train_trace(fig, name="total (optimised) · train"):
    return next(t for t in fig.data if t.name == name)


def test_smoothing_goes_by_step_so_a_thinned_history_draws_the_same_curve():
    """A jump from 0 to 1 after step 100, logged every step or every 4th (tensorflow/tensorboard#1518): the smoothed
    curve is (1 - w^(steps since the jump)) / (1 - w^step) (the debiasing) at the same steps either way;
    TensorBoard's per-value EMA is not."""
    weight, full_steps = 0.9, np.arange(1, 201)
    full = train_trace(loss_figure(rows_of(full_steps, full_steps > 100), [], smoothing=weight))
    thin_steps = full_steps[3::4]
    thin = train_trace(loss_figure(rows_of(thin_steps, thin_steps > 100), [], smoothing=weight))
    at = np.isin(full.x, thin.x)
    np.testing.assert_allclose(np.asarray(full.y)[at], thin.y, atol=1e-12)
    after = thin_steps > 100
    s = thin_steps[after]
    np.testing.assert_allclose(np.asarray(thin.y)[after], (1 - weight ** (s - 100)) / (1 - weight ** s), atol=1e-12)
    per_value = ema((thin_steps > 100).astype(float), weight)  # TensorBoard's: the thinned curve would be slower
    assert np.abs(per_value[after] - np.asarray(thin.y)[after]).max() > 0.1


def test_the_min_max_envelope_is_the_range_over_the_smoothings_window():
    rng = np.random.default_rng(0)
    steps, values = np.arange(1, 301) * 2, rng.normal(10, 1, 300)  # logged every other step
    fig = loss_figure(rows_of(steps, values), [], smoothing=0.95, band=True)
    lo = next(t for t in fig.data if t.name == "total (optimised) · min")
    hi = next(t for t in fig.data if t.name == "total (optimised) · max")
    assert hi.fill == "tonexty" and not [t for t in fig.data if t.opacity == 0.25]  # the band instead of the raw line
    window = time_constant(0.95)
    assert window == pytest.approx(19.5, abs=0.01)  # 0.95 ** 19.5 = 1/e
    inside = [(steps > s - window) & (steps <= s) for s in steps]  # the reference: every window by brute force
    np.testing.assert_allclose(lo.y, [values[m].min() for m in inside])
    np.testing.assert_allclose(hi.y, [values[m].max() for m in inside])


def test_a_strided_envelope_covers_every_value_its_points_stand_for():
    n = 5 * MAX_POINTS
    values = np.zeros(n)
    values[7] = 100.0  # a spike at a point the stride does not draw
    fig = loss_figure(rows_of(np.arange(1, n + 1), values), [], smoothing=0.0, band=True)
    hi = next(t for t in fig.data if t.name == "total (optimised) · max")
    assert len(hi.x) <= MAX_POINTS and max(hi.y) == 100.0


def test_log_x_for_steps_and_epochs():
    steps, epochs = history()
    for x_axis in ("step", "epoch"):
        fig = loss_figure(steps, epochs, log_x=True, x_axis=x_axis)
        assert fig.layout.xaxis.type == "log" and min(train_trace(fig, "KL · train").x) > 0
    assert loss_figure(steps, epochs).layout.xaxis.type in (None, "linear", "-")
