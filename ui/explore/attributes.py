"""The Attributes tab of Explore: an attribute vector between two groups (classes, a factor's values, or a continuous
factor's low and high thirds) and a slider that moves z along it — in the browser (ui/explore/live/attribute.js)
where the decoder runs there, on the server otherwise; for data with generating factors, each factor's direction
against the latent axes (cosine heatmap) beside MIG."""
from __future__ import annotations

import numpy as np
import streamlit as st

from ui.explore.data import Latents, model_asset
from ui.explore.latent import on_browser_z, view_state
from ui.explore.live import mount
from ui.explore.state import current_z, kept
from ui.images import grid, scale_for
from vae_core.attributes import attribute_vector, factor_alignment, tercile_groups
from vae_core.data import Dataset
from vae_core.latent import decode
from vae_core.metrics import mig
from vae_core.runs import Run

ALPHA_RANGE = (-1.5, 1.5)  # alpha = 1 moves z by the whole difference of the two groups' mean codes
MAX_LEVELS = 12  # a factor with more distinct values is continuous: its groups are the low and high thirds
IMAGE_PX = 160


def attribute_groups(dataset: Dataset, attribute: str) -> dict[str, np.ndarray]:
    """Group name -> mask over the dataset's rows, for "label" or "factor: <name>"."""
    if attribute == "label":
        values, k = dataset.labels, None
    else:
        k = dataset.factor_names.index(attribute.removeprefix("factor: "))
        values = dataset.factors[:, k]
    levels = np.unique(values)
    if len(levels) > MAX_LEVELS:
        low, high, (lo, hi) = tercile_groups(values)
        return {f"low third (≤ {lo:.3g})": low, f"high third (≥ {hi:.3g})": high}
    named = dataset.class_names if (k is None or k == 0) and dataset.class_names else None
    return {(named[int(v)] if named and int(v) < len(named) else f"{v:g}"): values == v for v in levels}


def attribute_options(dataset: Dataset) -> list[str]:
    options = ["label"] if dataset.labels is not None else []
    return options + [f"factor: {n}" for n in (dataset.factor_names or [])] if dataset.factors is not None else options


def attributes_ui(run: Run, dataset: Dataset, latents: Latents) -> None:
    options = attribute_options(dataset)
    if not options:
        st.info("Attribute vectors need labels or generating factors; this dataset has neither.")
        return
    cols = st.columns(3)
    attribute = cols[0].selectbox("Attribute", options, **kept("explore_attr", options[0], options))
    groups = attribute_groups(dataset, attribute)
    names = list(groups)
    a = cols[1].selectbox("From group A", names, **kept("explore_attr_a", names[0], names))
    b = cols[2].selectbox("To group B", names, **kept("explore_attr_b", names[-1], names))
    if a == b:
        st.info("Pick two different groups.")
        return
    vector = attribute_vector(latents.mu, groups[a], groups[b])
    st.caption(f"v = mean code of **{b}** ({vector.n_b:,} images) − mean code of **{a}** ({vector.n_a:,}); "
               f"|v| = {np.linalg.norm(vector.direction):.3f}. The slider moves z from where it is to z + α·v "
               "(α = 1: the whole difference; White 2016).")
    spec = {"direction": [float(v) for v in vector.direction], "lo": ALPHA_RANGE[0], "hi": ALPHA_RANGE[1],
            "from": str(a), "to": str(b)}
    asset, _ = model_asset(run)
    scale = scale_for(dataset.shape[1], IMAGE_PX)
    if asset is not None:
        mount("attribute", "explore_live_attribute", view_state(attribute=spec, scale=scale), {"model": asset},
              on_z=on_browser_z)
    else:
        alpha = st.slider("α along v", *ALPHA_RANGE, step=0.05, **kept("explore_attr_alpha", 0.0))
        z = current_z() + alpha * vector.direction.astype(np.float32)
        st.image(grid(decode(run.model, z[None]), 1, scale=scale), output_format="PNG",
                 caption=f"z + {alpha:.2f}·v, decoded on the server")
    if dataset.factors is not None and dataset.factor_names:
        alignment_ui(dataset, latents)


def alignment_ui(dataset: Dataset, latents: Latents) -> None:
    """Each factor's direction against the latent axes (cosine), and MIG for the whole code."""
    import plotly.graph_objects as go  # here: Explore's first view imports no plotly figures (cold start)

    value_names = {0: list(dataset.class_names)} if dataset.class_names else None
    labels, cos = factor_alignment(latents.mu, dataset.factors, list(dataset.factor_names), value_names)
    left, right = st.columns([4, 1])
    right.metric("MIG", f"{mig(latents.mu, dataset.factors):.3f}",
                 help="Mutual Information Gap (Chen et al. 2018): 0 entangled, 1 each factor in one latent")
    fig = go.Figure(go.Heatmap(z=cos, x=[f"z{d}" for d in range(cos.shape[1])], y=labels, zmin=-1, zmax=1,
                               colorscale="RdBu", reversescale=True, colorbar=dict(title="cos", thickness=12),
                               hovertemplate="%{y} · %{x}: cos %{z:.2f}<extra></extra>"))
    fig.update_layout(height=max(220, 28 * len(labels) + 80), margin=dict(l=10, r=10, t=10, b=10),
                      template="plotly_white")
    fig.update_yaxes(autorange="reversed")
    left.plotly_chart(fig, key="explore_attr_alignment")
    st.caption("Each factor's direction (the mean-code difference: one value against the rest, or the low third to "
               "the high third) against the latent axes: a row with one strong cell is a factor captured by one "
               "latent; spread-out rows are entangled.")
