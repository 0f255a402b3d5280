"""The Compare tab of Explore: a second run with the same latent size decoding the page's z beside the active model
(in the browser, following z as it moves: ui/explore/live/compare.js; on the server for a model kept there), with
both models' KL per latent dimension on the explored data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from ui.explore.data import Latents, latents_for, model_asset, over_budget
from ui.explore.latent import on_browser_z, view_state
from ui.explore.live import mount
from ui.explore.state import current_z, kept
from ui.images import grid, scale_for
from ui.server import BUNDLED_RUN, run_for, runs_root
from vae_core.data import Dataset
from vae_core.latent import decode
from vae_core.runs.checks import load_config
from vae_core.runs import Run, list_runs

IMAGE_PX = 160


def comparable_runs(run: Run) -> dict[str, Path]:
    """Other runs (the runs folder and the bundled one) whose decoder takes this run's z and makes its images."""
    found = {}
    for path in [s.path for s in list_runs(runs_root())] + [BUNDLED_RUN]:
        if path.resolve() == run.path.resolve() or path.name in found:
            continue
        try:
            model = load_config(path).model
        except (ValueError, OSError):
            continue
        if model.latent_dim == run.config.model.latent_dim and tuple(model.input_shape) == tuple(
                run.config.model.input_shape):
            found[path.name] = path
    return found


def compare_ui(run: Run, dataset: Dataset, latents: Latents) -> None:
    candidates = comparable_runs(run)
    d, shape = run.config.model.latent_dim, run.config.model.input_shape
    if not candidates:
        st.info(f"No other run has a {d}-D latent space for {shape[1]}×{shape[2]} images: train one on the Train "
                "page (for example the same settings with β = 4) to compare the two decoders here.")
        return
    names = list(candidates)
    name = st.selectbox("Second model", names, **kept("explore_compare_run", names[0], names),
                        help=f"Runs with a {d}-D latent space and {shape[1]}×{shape[2]} images")
    try:  # priced before the run is loaded
        refusal = over_budget(load_config(candidates[name]).model, dataset, name)
    except (ValueError, OSError) as exc:
        refusal = f"{name} cannot be read: {exc}"
    if refusal:
        st.warning(refusal, icon=":material/memory:")
        return
    other = run_for(candidates[name])
    mine, theirs = model_asset(run)[0], model_asset(other)[0]
    scale = scale_for(shape[1], IMAGE_PX)
    labels = [_label(run), _label(other)]
    if mine is not None and theirs is not None:
        mount("compare", "explore_live_compare", view_state(names=labels, scale=scale),
              {"model": mine, "other": theirs}, on_z=on_browser_z)
        st.caption("Both decoded in your browser at the page's z: move a slider, the ★ or the attribute slider and "
                   "both follow.")
    else:
        z = current_z()[None]
        for col, model_run, label in zip(st.columns(2), (run, other), labels):
            col.image(grid(decode(model_run.model, z), 1, scale=scale), caption=f"{label} (decoded on the server)",
                      output_format="PNG")
    theirs_codes = latents_for(other, dataset)
    st.plotly_chart(kl_bars(labels, [latents.dims.kl, theirs_codes.dims.kl]), key="explore_compare_kl")
    partial = "" if theirs_codes.complete else (f" ({other.name}'s from the {len(theirs_codes.rows):,} encoded so "
                                                "far, the rest encoding)")
    st.caption(f"Mean KL(q(z|x) ‖ p(z)) of each latent dimension over the {dataset.n:,} explored images{partial}, per "
               "model: a larger β switches dimensions off (bars near 0) and spreads what is left over fewer axes.")


def _label(run: Run) -> str:
    return f"{run.name} (β = {run.config.train.beta:g})"


def kl_bars(labels: list[str], kls: list[np.ndarray]) -> "go.Figure":
    """Each model's mean KL per latent dimension, grouped by dimension."""
    import plotly.graph_objects as go  # here, and ui.charts (pandas): Explore's first view imports neither

    from ui.charts import PALETTE

    fig = go.Figure([go.Bar(x=[f"z{i}" for i in range(len(kl))], y=np.asarray(kl, np.float64), name=label,
                            marker_color=PALETTE[i], hovertemplate="%{x}: %{y:.3f} nats<extra>" + label + "</extra>")
                     for i, (label, kl) in enumerate(zip(labels, kls))])
    fig.update_layout(barmode="group", height=300, margin=dict(l=10, r=10, t=30, b=10), template="plotly_white",
                      xaxis_title="latent dimension", yaxis_title="KL (nats)", legend=dict(orientation="h", y=1.12))
    return fig
