"""Posterior uncertainty on Explore: the Posterior tab (one image, n samples of q(z|x) decoded side by side, its
mean and sigma per dimension) and the mu +- 2 sigma ellipses the map draws around the selected images (latent axes
and PCA: the posterior pushed through the projection's linear map, vae_core.posterior)."""
from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from ui.explore.data import Latents
from ui.explore.state import SELECTION, kept
from ui.exports import samples_download_ui
from ui.images import grid, scale_for
from vae_core.data import Dataset
from vae_core.posterior import posterior_decodes, posterior_ellipses
from vae_core.projections import Projection
from vae_core.runs import Run

ELLIPSE_K = 2.0  # the ellipse is mu +- ELLIPSE_K sigma
MAX_ELLIPSES = 24  # selected images with an ellipse on the map (as many as the selection mosaic shows)
ELLIPSE_POINTS = 48
SAMPLE_COUNTS = [8, 16, 32]
TILE_PX = 56


def map_ellipses(projection: Projection, latents: Latents, rows: list[int]) -> list[dict]:
    """The first selected images' ellipses in map coordinates, for map.js ({row, points: [x0, y0, x1, y1, ...]});
    none for a method without a linear map to push a Gaussian through (t-SNE, UMAP)."""
    if not projection.spec.linear or not rows:
        return []
    shown = np.asarray(rows[:MAX_ELLIPSES])
    rings = posterior_ellipses(projection, latents.mu[shown], latents.logvar[shown], ELLIPSE_K, ELLIPSE_POINTS)
    return [{"row": int(r), "points": [round(float(v), 5) for v in ring.ravel()]} for r, ring in zip(shown, rings)]


def posterior_ui(run: Run, dataset: Dataset, latents: Latents) -> None:
    """One image's posterior: samples z ~ q(z|x) decoded side by side, beside the image and its reconstruction."""
    selected = st.session_state.get(SELECTION, [])
    cols = st.columns([2, 1, 1], vertical_alignment="bottom")
    if selected:
        row = int(selected[0])
        cols[0].markdown(f"Image **#{row}** (the first selected on the map)")
    else:
        row = int(cols[0].number_input("Image #", 0, dataset.n - 1, step=1, **kept("explore_post_row", 0),
                                       help="Or select a point on the map"))
    n = cols[1].selectbox("Samples", SAMPLE_COUNTS, **kept("explore_post_n", 16, SAMPLE_COUNTS))
    seed = int(cols[2].number_input("Seed", 0, 2**31 - 1, step=1, **kept("explore_post_seed", 0)))
    image = dataset.batch(np.array([row]))[0]
    out = posterior_decodes(run.model, image, int(n), torch.Generator().manual_seed(seed))
    scale = scale_for(dataset.shape[1], TILE_PX)
    left, right = st.columns([1, 4])
    left.markdown("**Image · reconstruction**")
    left.image(grid(np.stack([image, out.mean_image]), 1, scale=scale), output_format="PNG")
    right.markdown(f"**{n} samples** z ~ q(z|x) = N(μ, σ²), decoded")
    right.image(grid(out.images, min(int(n), 8), scale=scale), output_format="PNG")
    with right:
        samples_download_ui(out.images, min(int(n), 8), f"{run.name}-posterior-{row}-seed{seed}.png",
                            "Posterior samples (PNG)", "explore_dl_posterior_samples_png")
    st.dataframe(_dims_table(out.mu, out.sigma, latents), hide_index=True, key="explore_post_table",
                 column_config={"μ": st.column_config.NumberColumn(format="%.3f"),
                                "σ": st.column_config.NumberColumn(format="%.3f"),
                                "KL (nats)": st.column_config.NumberColumn(format="%.3f")})
    st.caption("Where σ is near 1 and μ near 0 the dimension says nothing about this image (its posterior is the "
               "prior); the samples differ along the dimensions with a wide posterior. On the map, the ellipses "
               f"around selected points are μ ± {ELLIPSE_K:g}σ projected (latent axes and PCA).")


def _dims_table(mu: np.ndarray, sigma: np.ndarray, latents: Latents) -> "pd.DataFrame":
    """Per dimension, most informative first: this image's mu, sigma and KL(N(mu, sigma^2) || N(0, 1))."""
    import pandas as pd  # here: Explore's first view imports no pandas (cold start)

    order = [int(d) for d in latents.dims.order]
    kl = 0.5 * (mu ** 2 + sigma ** 2 - 1.0) - np.log(sigma)
    return pd.DataFrame({"dimension": [f"z{d}" for d in order], "μ": mu[order], "σ": sigma[order],
                         "KL (nats)": kl[order]})
