"""Plotly figures for training curves: loss terms (train and validation), per-dimension KL, several runs overlaid."""
from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # only a type here: the heatmap's input
    from vae_core.kl_history import KLOverTime

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from vae_core.metrics import KL_COLLAPSE_NATS

MAX_POINTS = 1500  # per trace; longer curves are strided after smoothing so the browser stays fast
TERMS = {  # key in a step row -> (label, colour, dash); β·KL is dashed so it stays visible on top of KL when β = 1
    "recon": ("reconstruction", "#4B6BFB", "solid"),
    "kl": ("KL", "#E4572E", "solid"),
    "beta_kl": ("β·KL", "#F3A712", "dash"),
    "total": ("total (optimised)", "#2E2E3A", "solid"),
}
VAL_TERMS = {"recon": "val_recon", "kl": "val_kl", "beta_kl": "val_beta_kl", "total": "val_neg_elbo"}
OVERLAY_METRICS = {  # label -> (table, key)
    "validation −ELBO": ("epochs", "val_neg_elbo"),
    "validation reconstruction": ("epochs", "val_recon"),
    "validation KL": ("epochs", "val_kl"),
    "active units": ("epochs", "active_units"),
    "training total": ("steps", "total"),
    "training reconstruction": ("steps", "recon"),
    "training KL": ("steps", "kl"),
}
PALETTE = ["#4B6BFB", "#E4572E", "#17BEBB", "#F3A712", "#76B041", "#A14DA0", "#2E2E3A", "#FF6F91", "#8D6A9F"]


def ema(values: Sequence[float], weight: float, x: Sequence[float] | None = None) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average debiased like Adam, so it starts at the first value.

    With x (each value's step), the weight is per step rather than per value: a value gap steps after the one before
    moves the average by 1 - weight**gap, so the curve does not depend on how many values were kept (a history
    thinned to every other row, a run logging every k steps: tensorflow/tensorboard#1518). On unit steps from step 1
    (and without x) it is TensorBoard's own."""
    out = np.empty(len(values), dtype=np.float64)
    last, norm, before = 0.0, 0.0, None
    for i, value in enumerate(values):
        if not math.isfinite(value):
            out[i] = value  # NaN/inf pass through, as in TensorBoard
            continue
        if x is None:
            gap = 1.0
        else:  # the first value stands for the steps since step 0, as it would logged every step
            gap = float(x[i]) - before if before is not None else max(1.0, float(x[i]))
        keep = weight ** gap if weight > 0 else 0.0
        last, norm = last * keep + (1 - keep) * value, norm * keep + (1 - keep)  # norm: the debiasing, 1 - w^n
        before = None if x is None else float(x[i])
        out[i] = last / norm if norm > 0 else value
    return out


def time_constant(weight: float) -> float:
    """The steps over which ema(weight) forgets (weight**steps = 1/e): the envelope's window. 0 for no smoothing."""
    return -1.0 / math.log(weight) if 0 < weight < 1 else 0.0


def envelope(x: Sequence[float], values: Sequence[float], window: float) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest value within the last `window` steps of each point (x - window, x]: the range the
    smoothed curve averages over (tensorflow/tensorboard#6830), by step like ema, so it too does not depend on how
    many values were kept. Non-finite values are left out."""
    x, values = np.asarray(x, np.float64), np.asarray(values, np.float64)
    lo, hi = np.empty(len(values)), np.empty(len(values))
    low, high = deque(), deque()  # indices with increasing values (low) / decreasing (high) inside the window
    for i, value in enumerate(values):
        if math.isfinite(value):
            while low and values[low[-1]] >= value:
                low.pop()
            while high and values[high[-1]] <= value:
                high.pop()
            low.append(i)
            high.append(i)
        for queue in (low, high):
            while queue and x[queue[0]] <= x[i] - window and queue[0] != i:
                queue.popleft()
        lo[i] = values[low[0]] if low else np.nan
        hi[i] = values[high[0]] if high else np.nan
    return lo, hi


def _bucketed(lo: np.ndarray, hi: np.ndarray, cut: slice) -> tuple[np.ndarray, np.ndarray]:
    """lo and hi at the strided points, each over the values its point stands for (since the point before it)."""
    shown = np.arange(len(lo))[cut]
    starts = np.concatenate([[0], shown[:-1] + 1])
    return (np.array([np.nanmin(lo[a:b + 1]) for a, b in zip(starts, shown)]),
            np.array([np.nanmax(hi[a:b + 1]) for a, b in zip(starts, shown)]))


def steps_per_epoch(epochs: list[dict]) -> float | None:
    """Optimiser steps in one epoch, read from the epoch rows (None before the first epoch ends)."""
    if not epochs:
        return None
    first = epochs[0]
    return first["step"] / first["epoch"] if first.get("epoch") else None


def _x(rows: list[dict], x_axis: str, per_epoch: float | None) -> np.ndarray:
    """The x of each step row: its step, or its (fractional) epoch."""
    steps = np.array([r["step"] for r in rows], dtype=np.float64)
    if x_axis == "step":
        return steps
    if per_epoch:
        return steps / per_epoch
    return np.array([r["epoch"] for r in rows], dtype=np.float64)  # before the first epoch ends: whole epochs


def _stride(n: int) -> slice:
    return slice(None, None, max(1, -(-n // MAX_POINTS)))


def _val_rows(steps: list[dict], epochs: list[dict]) -> list[dict]:
    """Epoch rows with the validation β·KL added (β as used at that epoch's last step)."""
    beta_at = {r["step"]: r.get("beta", 1.0) for r in steps}
    rows = []
    for row in epochs:
        beta = beta_at.get(row["step"], steps[-1].get("beta", 1.0) if steps else 1.0)
        rows.append(row | {"val_beta_kl": beta * row["val_kl"]} if row.get("val_kl") is not None else row)
    return rows


def loss_figure(steps: list[dict], epochs: list[dict], smoothing: float = 0.6, log_y: bool = False,
                x_axis: str = "step", terms: Sequence[str] = tuple(TERMS), log_x: bool = False,
                band: bool = False) -> go.Figure:
    """Training curves (EMA-smoothed by step, bold; under each the raw values faint, or with band their min/max
    envelope over the smoothing's window) and validation points for each loss term, in nats per image."""
    fig = go.Figure()
    per_epoch = steps_per_epoch(epochs)
    if steps:
        x, cut = _x(steps, x_axis, per_epoch), _stride(len(steps))
        at = np.array([r["step"] for r in steps], dtype=np.float64)  # smoothing and envelope go by step
        for key in terms:
            label, colour, dash = TERMS[key]
            y = np.array([r[key] for r in steps], dtype=np.float64)
            if band:
                lo, hi = _bucketed(*envelope(at, y, time_constant(smoothing)), cut)
                fig.add_trace(go.Scatter(x=x[cut], y=lo, mode="lines", line=dict(width=0), legendgroup=key,
                                         showlegend=False, hoverinfo="skip", name=f"{label} · min"))
                fig.add_trace(go.Scatter(x=x[cut], y=hi, mode="lines", line=dict(width=0), fill="tonexty",
                                         fillcolor=_translucent(colour), legendgroup=key, showlegend=False,
                                         hoverinfo="skip", name=f"{label} · max"))
            elif smoothing > 0:
                fig.add_trace(go.Scatter(x=x[cut], y=y[cut], mode="lines", line=dict(color=colour, width=1),
                                         opacity=0.25, legendgroup=key, showlegend=False, hoverinfo="skip"))
            fig.add_trace(go.Scatter(x=x[cut], y=ema(y, smoothing, at)[cut], mode="lines", name=f"{label} · train",
                                     line=dict(color=colour, width=2, dash=dash), legendgroup=key))
    val = _val_rows(steps, epochs)
    for key in terms:
        label, colour, _ = TERMS[key]
        rows = [r for r in val if r.get(VAL_TERMS[key]) is not None]
        if rows:
            x = [r["step"] if x_axis == "step" else r["epoch"] for r in rows]
            name = "−ELBO · validation" if key == "total" else f"{label} · validation"
            fig.add_trace(go.Scatter(x=x, y=[r[VAL_TERMS[key]] for r in rows], mode="lines+markers", name=name,
                                     line=dict(color=colour, width=1.5, dash="dot"), marker=dict(size=6),
                                     legendgroup=key))
    fig.update_layout(**_layout(log_y), xaxis_title=x_axis, yaxis_title="nats per image")
    if log_x:  # steps and epochs start above 0 (the first logged step, the first fraction of an epoch)
        fig.update_xaxes(type="log")
    return fig


def _translucent(colour: str, alpha: float = 0.18) -> str:
    """#RRGGBB as an rgba() with alpha, for a band under its curve."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def kl_bars_figure(kl_per_dim: Sequence[float], threshold: float = KL_COLLAPSE_NATS) -> go.Figure:
    """KL of each latent dimension, largest first; collapsed dimensions (below threshold) in grey."""
    kl = np.asarray(kl_per_dim, dtype=np.float64)
    order = np.argsort(-kl, kind="stable")
    colours = ["#4B6BFB" if kl[i] >= threshold else "#B8B8C8" for i in order]
    fig = go.Figure(go.Bar(x=[f"z{i}" for i in order], y=kl[order], marker_color=colours,
                           hovertemplate="%{x}: %{y:.3f} nats<extra></extra>"))
    fig.add_hline(y=threshold, line=dict(color="#E4572E", dash="dash", width=1),
                  annotation_text=f"collapse < {threshold:g}", annotation_position="top right")
    fig.update_layout(**_layout(False), xaxis_title="latent dimension (sorted)", yaxis_title="KL (nats)",
                      showlegend=False)
    fig.update_xaxes(type="category")
    return fig


def kl_heatmap_figure(kl: KLOverTime) -> go.Figure:
    """KL of each latent dimension (rows, z0 at the top) over time (columns), in nats: units switching on light up,
    collapsing ones go dark."""
    dims = [f"z{i}" for i in range(kl.kl.shape[0])]
    unit = "step" if kl.axis == "step" else "epoch"
    fig = go.Figure(go.Heatmap(z=kl.kl, x=kl.x, y=dims, colorscale="Viridis", zmin=0, name="KL per dimension",
                               colorbar=dict(title=dict(text="nats", side="right"), thickness=12),
                               hovertemplate=f"%{{y}} · {unit} %{{x}}: %{{z:.3f}} nats<extra></extra>"))
    fig.update_layout(**_layout(False), xaxis_title=unit, yaxis_title="latent dimension", showlegend=False)
    fig.update_layout(hovermode="closest")
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def overlay_figure(histories: dict[str, dict], metric: str, x_axis: str = "epoch", smoothing: float = 0.6,
                   log_y: bool = False) -> go.Figure:
    """One metric of several runs in one chart (validation metrics per epoch, training ones smoothed per step)."""
    table, key = OVERLAY_METRICS[metric]
    fig = go.Figure()
    for i, (name, history) in enumerate(histories.items()):
        rows = [r for r in history.get(table, []) if r.get(key) is not None]
        if not rows:
            continue
        colour = PALETTE[i % len(PALETTE)]
        if table == "steps":
            x, cut = _x(rows, x_axis, steps_per_epoch(history.get("epochs", []))), _stride(len(rows))
            y = ema([r[key] for r in rows], smoothing, [r["step"] for r in rows])
            fig.add_trace(go.Scatter(x=x[cut], y=y[cut], mode="lines", name=name, line=dict(color=colour, width=2)))
        else:
            x = [r["step"] if x_axis == "step" else r["epoch"] for r in rows]
            fig.add_trace(go.Scatter(x=x, y=[r[key] for r in rows], mode="lines+markers", name=name,
                                     line=dict(color=colour, width=2), marker=dict(size=5)))
    fig.update_layout(**_layout(log_y), xaxis_title=x_axis, yaxis_title=metric)
    return fig


def history_frame(history: dict) -> pd.DataFrame:
    """The step rows as a table (kl_per_dim spread into kl_z0, kl_z1, ...), joined with the epoch rows by step."""
    steps = pd.DataFrame([{k: v for k, v in r.items() if k != "kl_per_dim"} |
                          {f"kl_z{i}": v for i, v in enumerate(r.get("kl_per_dim", []))}
                          for r in history.get("steps", [])])
    epochs = pd.DataFrame([{k: v for k, v in r.items() if k != "epoch" and not isinstance(v, list)}
                           for r in history.get("epochs", [])])
    if steps.empty or epochs.empty:
        return steps
    return steps.merge(epochs, on="step", how="left")


def _layout(log_y: bool) -> dict:
    return dict(height=360, margin=dict(l=10, r=10, t=30, b=10), hovermode="x unified", template="plotly_white",
                legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0), yaxis_type="log" if log_y else "linear")
