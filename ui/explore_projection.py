"""The projection: latent codes in 2-D, coloured by label / factor / reconstruction error / KL, with the current z
as a star, click or box/lasso selection mapped to dataset rows through customdata, and the selected images beside
their reconstructions."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st

from ui.explore_data import Latents, projection_for, row_labels
from ui.explore_state import SELECTION, current_z, kept, set_z
from ui.images import grid
from vae_core.data import Dataset
from vae_core.latent import Projection, decode
from vae_core.runs import Run

CHART_KEY = "explore_projection_chart"
METHOD_NAMES = {"identity": "Latent axes", "pca": "PCA", "tsne": "t-SNE"}
WEBGL_ABOVE = 1000  # points; Scattergl beyond this
MAX_PLOT_POINTS = 10_000  # identity/PCA are fitted on every code but at most this many are drawn
SHOW_SELECTED = 24
SELECTED_PX = 56
PALETTE = ["#4B6BFB", "#E4572E", "#17BEBB", "#F3A712", "#76B041", "#A14DA0", "#2E2E3A", "#FF6F91", "#8D6A9F",
           "#00A6ED", "#7FB800", "#FFB400"]


@dataclass
class Colouring:
    values: np.ndarray  # (N,) per dataset row: class index (categorical) or a number
    title: str
    categorical: bool
    names: list[str] | None = None  # class names, for categorical colourings


def colour_options(dataset: Dataset) -> list[str]:
    options = ["label"] if dataset.labels is not None else []
    options += [f"factor: {name}" for name in (dataset.factor_names or [])] if dataset.factors is not None else []
    return options + ["reconstruction error", "KL"]


def colouring(option: str, dataset: Dataset, latents: Latents) -> Colouring:
    if option == "label":
        names = dataset.class_names or [str(c) for c in range(int(dataset.labels.max()) + 1)]
        return Colouring(dataset.labels, "label", True, names)
    if option.startswith("factor: "):
        k = dataset.factor_names.index(option.removeprefix("factor: "))
        values = dataset.factors[:, k]
        few = len(np.unique(values)) <= len(PALETTE)
        names = (dataset.class_names if k == 0 and dataset.class_names else None) if few else None
        if few:
            uniq = np.unique(values)
            return Colouring(np.searchsorted(uniq, values), option[8:], True, names or [f"{v:g}" for v in uniq])
        return Colouring(values, option[8:], False)
    if option == "KL":
        return Colouring(latents.kl, "KL (nats)", False)
    return Colouring(latents.recon_error, "−log p(x|μ) (nats)", False)


def selected_rows(selection: Any) -> list[int]:
    """Dataset rows of a plotly selection, read from each point's customdata (point indices are per trace, so they
    cannot be used); points without customdata (the z marker) are skipped; order kept, duplicates dropped.

    A customdata row arrives as [row], as {"0": row} (numpy customdata travels as a typed array) or as a number."""
    rows = []
    for point in (selection or {}).get("points", []) or []:
        data = point.get("customdata")
        if isinstance(data, dict):
            data = data.get("0", data.get(0))
        if isinstance(data, (list, tuple)):
            data = data[0] if data else None
        if data is None:
            continue
        try:
            rows.append(int(data))
        except (TypeError, ValueError):
            continue
    return list(dict.fromkeys(rows))


def selection_target(rows: list[int], mu: np.ndarray) -> np.ndarray | None:
    """Where a selection moves z: a single point (a click) to that image's posterior mean; several points nowhere."""
    return mu[rows[0]].copy() if len(rows) == 1 else None


def _on_select(mu: np.ndarray) -> None:
    event = st.session_state.get(CHART_KEY) or {}
    rows = selected_rows(event.get("selection"))
    st.session_state[SELECTION] = rows
    target = selection_target(rows, mu)
    if target is not None:
        set_z(target)


def shown_rows(projection: Projection, limit: int = MAX_PLOT_POINTS) -> np.ndarray:
    """Positions into projection.rows_ that are drawn: all, or a seeded subsample of `limit`."""
    n = len(projection.rows_)
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, limit, replace=False))


def axis_titles(projection: Projection) -> tuple[str, str]:
    if projection.method == "identity":
        return f"z{projection.dims[0]}", f"z{projection.dims[1]}"
    if projection.method == "pca":
        r = projection.explained_variance_ratio_
        return f"PC1 ({r[0]:.0%} of variance)", f"PC2 ({r[1]:.0%})"
    return "t-SNE 1", "t-SNE 2"


def projection_figure(projection: Projection, colour: Colouring, labels: np.ndarray | None, z: np.ndarray | None,
                      selected: list[int]) -> go.Figure:
    """The scatter (one trace per class for categorical colours), selected rows ringed, and z as a star."""
    pos = shown_rows(projection)
    rows, xy = projection.rows_[pos], projection.embedding_[pos]
    scatter = go.Scattergl if len(rows) > WEBGL_ABOVE else go.Scatter
    common = dict(mode="markers", hovertemplate="%{text}<extra></extra>")
    traces = []
    if colour.categorical:
        for c in np.unique(colour.values[rows]):
            m = colour.values[rows] == c
            traces.append(scatter(x=xy[m, 0], y=xy[m, 1], customdata=rows[m, None], text=hover_texts(rows[m], labels),
                                  name=colour.names[int(c)], marker=dict(size=5, color=PALETTE[int(c) % len(PALETTE)],
                                                                          opacity=0.75), **common))
    else:
        texts = [f"{t}<br>{colour.title} {v:.3g}" for t, v in zip(hover_texts(rows, labels), colour.values[rows])]
        traces.append(scatter(x=xy[:, 0], y=xy[:, 1], customdata=rows[:, None], text=texts,
                              name=colour.title, showlegend=False, **common,
                              marker=dict(size=5, color=colour.values[rows], colorscale="Viridis", opacity=0.8,
                                          colorbar=dict(title=colour.title, thickness=12))))
    traces += _overlays(projection, labels, z, selected)
    fig = go.Figure(traces)
    x_title, y_title = axis_titles(projection)
    legend = dict(orientation="h", yanchor="top", y=-0.12, x=0, itemsizing="constant")  # clear of the toolbar
    fig.update_layout(height=560, margin=dict(l=10, r=10, t=10, b=10), legend=legend,
                      uirevision=f"{projection.method}{projection.dims}",  # zoom survives z moves, not a new map
                      clickmode="event+select", xaxis_title=x_title, yaxis_title=y_title)
    if projection.method != "tsne":
        fig.update_yaxes(scaleanchor="x", scaleratio=1)  # distances in z-space stay honest
    return fig


def _overlays(projection: Projection, labels: np.ndarray | None, z: np.ndarray | None, selected: list[int]) -> list:
    traces = []
    position = {int(r): i for i, r in enumerate(projection.rows_)}
    sel = [r for r in selected if r in position][:200]
    if sel:
        xy = projection.embedding_[[position[r] for r in sel]]
        traces.append(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", name="selected",
                                 customdata=[[r] for r in sel], text=hover_texts(np.asarray(sel), labels),
                                 hovertemplate="%{text}<extra>selected</extra>",
                                 marker=dict(size=12, symbol="circle-open", color="#111", line=dict(width=2))))
    if z is not None:
        xy = projection.transform(z[None])[0]
        name = "current z" if projection.exact else "current z (≈, from its nearest codes)"
        traces.append(go.Scatter(x=[xy[0]], y=[xy[1]], mode="markers", name=name, hoverinfo="name",
                                 marker=dict(size=20, symbol="star", color="#FF4B4B", line=dict(width=1.5,
                                                                                                 color="white"))))
    return traces


def hover_texts(rows: np.ndarray, labels: np.ndarray | None) -> list[str]:
    """The hover line of each drawn row: its label (if any) and its index in the dataset."""
    if labels is None:
        return [f"#{r}" for r in rows]
    return [f"label {name} · #{r}" for name, r in zip(labels[rows], rows)]


def projection_ui(run: Run, dataset: Dataset, latents: Latents) -> str:
    """Controls, the chart and its notes; returns the method for the URL."""
    method, params = _controls_ui(run, dataset, latents)
    projection = projection_for(run, dataset, method, params)
    colour = colouring(st.session_state.explore_colour, dataset, latents)
    selected = st.session_state.get(SELECTION, [])
    fig = projection_figure(projection, colour, row_labels(dataset), current_z(), selected)
    st.plotly_chart(fig, key=CHART_KEY, on_select=functools.partial(_on_select, latents.mu),
                    selection_mode=("points", "box", "lasso"), config={"displaylogo": False})
    st.caption(_notes(projection, dataset, params))
    selection_ui(run, dataset, latents, selected)
    return method


def _controls_ui(run: Run, dataset: Dataset, latents: Latents) -> tuple[str, dict]:
    d = run.config.model.latent_dim
    methods = ["identity", "pca", "tsne"] if d >= 2 else ["pca", "tsne"]
    default = "identity" if d == 2 else "pca"
    url_method = st.query_params.get("method")
    cols = st.columns([1.2, 1.4, 1.3, 0.8], vertical_alignment="bottom")  # room for "Sample z" + its help
    method = cols[0].selectbox("Projection", methods, format_func=METHOD_NAMES.get,
                               **kept("explore_method", url_method if url_method in methods else default, methods))
    options = colour_options(dataset)
    cols[1].selectbox("Colour by", options, **kept("explore_colour", options[0], options))
    sample = cols[2].toggle("Sample z", help="Project one sample of q(z|x) per image instead of the posterior means",
                            **kept("explore_sample", False))
    params: dict = {"sample": bool(sample)}
    if method == "identity":
        top = sorted(int(v) for v in latents.dims.order[:2])
        x = cols[3].selectbox("x axis", range(d), format_func=lambda v: f"z{v}", **kept("explore_x", top[0], range(d)))
        y_options = [v for v in range(d) if v != x]
        y = cols[3].selectbox("y axis", y_options, format_func=lambda v: f"z{v}",
                              **kept("explore_y", top[1] if top[1] != x else y_options[0], y_options))
        params["dims"] = [int(x), int(y)]
    elif method == "tsne":
        with cols[3].popover("t-SNE settings"):
            params["max_points"] = st.number_input("Points (subsample above)", 100, 20_000, step=500,
                                                   **kept("explore_tsne_points", 2000))
            params["perplexity"] = st.slider("Perplexity", 5, 100, **kept("explore_perplexity", 30))
            params["iterations"] = st.select_slider("Iterations", [250, 500, 1000], help="more: a more settled map, "
                                                    "slower", **kept("explore_tsne_iterations", 500, [250, 500, 1000]))
    return method, params


def _notes(projection: Projection, dataset: Dataset, params: dict) -> str:
    shown = len(shown_rows(projection))
    what = "one sample of q(z|x)" if params.get("sample") else "the posterior mean"
    notes = [f"{shown:,} of {dataset.n:,} images, each at {what}. Click a point to move the sliders to its "
             "posterior mean; box or lasso (toolbar) to select many."]
    if projection.method == "tsne" and len(projection.rows_) < dataset.n:
        notes.append(f"t-SNE ran on a random subsample of {len(projection.rows_):,} codes.")
    if not projection.exact:
        notes.append("t-SNE has no map for new points: the ★ is placed at the distance-weighted mean of the positions "
                     "of z's 10 nearest codes, so treat it as approximate.")
    elif projection.method == "pca":
        total = projection.explained_variance_ratio_.sum()
        notes.append(f"The two principal axes explain {total:.0%} of the codes' variance; ★ is z projected exactly.")
    else:
        notes.append("★ is the current z, exactly.")
    return " ".join(notes)


def selection_ui(run: Run, dataset: Dataset, latents: Latents, rows: list[int]) -> None:
    """The selected images (top row) above their reconstructions from the posterior mean (bottom row)."""
    if not rows:
        return
    shown = rows[:SHOW_SELECTED]
    originals = dataset.batch(np.asarray(shown))
    recons = decode(run.model, latents.mu[shown])
    ncols = min(len(shown), 12)
    more = f" (first {SHOW_SELECTED} shown)" if len(rows) > SHOW_SELECTED else ""
    st.markdown(f"**Selected: {len(rows)} image{'s' * (len(rows) > 1)}**{more} · "
                + ", ".join(f"#{r}" for r in shown))
    st.caption("Originals, each with its reconstruction (the decoded posterior mean) below it.")
    for start in range(0, len(shown), ncols):
        pair = np.concatenate([originals[start:start + ncols], recons[start:start + ncols]])
        mosaic = grid(pair, min(ncols, len(shown) - start), scale=max(1, round(SELECTED_PX / pair.shape[-2])))
        st.image(mosaic, width=mosaic.shape[1], output_format="PNG")
