"""Views of the decoder around z: traversals (one row per dimension), the 2-D manifold grid, interpolation (linear
and spherical side by side, with each frame's prior log-density) and sampling (prior beside aggregate posterior).
Only the open tab is computed, and nothing here before the page is scrolled near it. Traversals and the manifold are
decoded in the browser (the live view's "grid" part) and follow z as it moves; a model kept on the server is decoded
here instead."""
from __future__ import annotations

import numpy as np
import streamlit as st

from ui.explore.attributes import attributes_ui
from ui.explore.compare import compare_ui
from ui.explore.data import Latents, model_asset
from ui.explore.latent import dim_label, on_browser_z, view_state
from ui.explore.live import mount, reveal
from ui.explore.posterior import posterior_ui
from ui.explore.state import SELECTION, current_z, kept, put
from ui.exports import (interpolation_downloads_ui, manifold_download_ui, samples_download_ui,
                        traversal_downloads_ui)
from ui.images import grid, scale_for
from ui.warmup import settle
from vae_core.data import Dataset
from vae_core.latent import (aggregate_posterior_samples, decode, lerp, manifold_grid, prior_log_density,
                             prior_samples, slerp, traversal_grid)
from vae_core.runs import Run

SHOWN = "explore_views_shown"  # the page has been scrolled to the views: they and the nearest images are drawn
TABS = ["Traversals", "Manifold", "Interpolation", "Sampling", "Posterior", "Attributes", "Compare"]
TILE_PX = 56  # one decoded image in a traversal or interpolation row
MANIFOLD_TILE_PX = 32


def views_shown() -> bool:
    """True once the browser has been scrolled near the views (a marker below the first screen says so); until then
    neither they nor the nearest images are sent, so a new session's first screen (map, sliders) is drawn sooner."""
    if st.session_state.get(SHOWN):
        return True
    reveal("explore_reveal", on_seen=_show_views)
    return False


def _show_views() -> None:
    st.session_state[SHOWN] = True


def views_ui(run: Run, dataset: Dataset, latents: Latents) -> None:
    settle()  # the views draw charts and tables: pandas must not be half-imported by the warm-up thread
    tabs = st.tabs(TABS, on_change="rerun", **_tab_state())
    views = (traversals_ui, manifold_ui, interpolation_ui, sampling_ui, posterior_ui, attributes_ui, compare_ui)
    for tab, draw in zip(tabs, views):
        if tab.open:
            with tab:
                draw(run, dataset, latents)


def _tab_state() -> dict:
    """The tabs' key, restored from a plain copy after a page switch (tabs take no on_change args: read it back)."""
    if "explore_tab" not in st.session_state:
        st.session_state.explore_tab = TABS[0]
    if "w_explore_tab" in st.session_state:
        st.session_state.explore_tab = st.session_state.w_explore_tab
    else:
        st.session_state.w_explore_tab = st.session_state.explore_tab
    return {"key": "w_explore_tab"}


def _dim_options(latents: Latents) -> list[int]:
    return [int(d) for d in latents.dims.order]


def traversals_ui(run: Run, dataset: Dataset, latents: Latents) -> None:
    st.caption("Each row sweeps one latent dimension across its range (1st–99th percentile of the aggregate "
               "posterior) with the others held at the current z (Higgins et al. 2017, β-VAE).")
    options = _dim_options(latents)
    active = [d for d in options if not latents.dims.collapsed[d]] or options
    cols = st.columns([4, 1])
    dims = cols[0].multiselect("Dimensions", options, format_func=lambda d: dim_label(d, latents),
                               **kept("explore_traverse_dims", active[:5], options, per_model=True))
    steps = cols[1].slider("Steps", 5, 15, **kept("explore_traverse_steps", 9))
    if not dims:
        st.info("Pick at least one dimension.")
        return
    traversal_downloads_ui(run.model, run.name, current_z(), dims, latents.ranges, int(steps))
    spec = {"kind": "traverse", "steps": int(steps), "dims": [_axis(d, latents) for d in dims]}
    if _grid_ui(run, spec, "explore_live_traversals", TILE_PX):
        return
    images = decode(run.model, traversal_grid(current_z(), dims, latents.ranges, steps))  # (R, S, C, H, W)
    scale = scale_for(images.shape[-2], TILE_PX)
    for d, row in zip(dims, images):
        label, picture = st.columns([1, 9], vertical_alignment="center")
        lo, hi = latents.ranges[d]
        label.markdown(f"**z{d}**  \n{lo:.1f} → {hi:.1f}")
        picture.image(grid(row, steps, scale=scale), output_format="PNG")


def manifold_ui(run: Run, dataset: Dataset, latents: Latents) -> None:
    d = run.config.model.latent_dim
    if d < 2:
        st.info("The manifold grid needs at least two latent dimensions.")
        return
    options = _dim_options(latents)
    cols = st.columns(3)
    x = cols[0].selectbox("x: dimension", options, format_func=lambda v: dim_label(v, latents),
                          **kept("explore_manifold_x", options[0], options, per_model=True))
    y_options = [v for v in options if v != x]
    y = cols[1].selectbox("y: dimension", y_options, format_func=lambda v: dim_label(v, latents),
                          **kept("explore_manifold_y", y_options[0], y_options, per_model=True))
    steps = cols[2].slider("Steps", 5, 25, **kept("explore_manifold_steps", 15))
    whole = "the whole learned manifold" if d == 2 else "the other dimensions held at the current z"
    st.caption(f"Decodes on a {steps}×{steps} grid: z{x} from {latents.ranges[x][0]:.1f} (left) to "
               f"{latents.ranges[x][1]:.1f} (right), z{y} from {latents.ranges[y][1]:.1f} (top) to "
               f"{latents.ranges[y][0]:.1f} (bottom), {whole} (Kingma & Welling 2014, fig. 4).")
    manifold_download_ui(run.model, run.name, current_z(), (x, y), latents.ranges, int(steps))
    spec = {"kind": "manifold", "steps": int(steps), "x": _axis(x, latents), "y": _axis(y, latents)}
    if _grid_ui(run, spec, "explore_live_manifold", MANIFOLD_TILE_PX):
        return
    images = decode(run.model, manifold_grid(current_z(), (x, y), latents.ranges, steps))  # (S, S, C, H, W)
    flat = images.reshape(-1, *images.shape[2:])
    st.image(grid(flat, steps, scale=scale_for(images.shape[-2], MANIFOLD_TILE_PX), pad=1), output_format="PNG")


def _axis(d: int, latents: Latents) -> dict:
    return {"index": int(d), "lo": float(latents.ranges[d][0]), "hi": float(latents.ranges[d][1])}


def _grid_ui(run: Run, spec: dict, key: str, tile_px: int) -> bool:
    """Mount the browser's grid of images around z (the same maths as traversal_grid / manifold_grid); False when
    the model stays on the server."""
    asset, _ = model_asset(run)
    if asset is None:
        return False
    mount("grid", key, view_state(grid=spec, tile_px=tile_px), {"model": asset}, on_z=on_browser_z)
    st.caption("Decoded in your browser; follows z as you drag.")
    return True


def endpoints_ui(dataset: Dataset, latents: Latents) -> tuple[int, int] | None:
    """The two images to interpolate between: by index, by class (its most typical member), or the selection."""
    sources = ["by index"] + (["by class"] if dataset.labels is not None else []) + ["from the selection"]
    source = st.radio("Endpoints", sources, horizontal=True, **kept("explore_interp_source", sources[0], sources))
    if source == "by index":
        cols = st.columns(2)
        a = cols[0].number_input("Image A #", 0, dataset.n - 1, step=1, **kept("explore_interp_a", 0))
        b = cols[1].number_input("Image B #", 0, dataset.n - 1, step=1,
                                 **kept("explore_interp_b", min(1, dataset.n - 1)))
        return int(a), int(b)
    if source == "by class":
        names = dataset.class_names or [str(c) for c in range(int(dataset.labels.max()) + 1)]
        present = sorted(set(int(v) for v in np.unique(dataset.labels)))
        cols = st.columns(2)
        a = cols[0].selectbox("Class A", present, format_func=lambda c: names[c],
                              **kept("explore_interp_ca", present[0], present))
        b = cols[1].selectbox("Class B", present, format_func=lambda c: names[c],
                              **kept("explore_interp_cb", present[min(1, len(present) - 1)], present))
        return typical_member(dataset, latents, a), typical_member(dataset, latents, b)
    rows = st.session_state.get(SELECTION, [])
    if len(rows) < 2:
        st.info("Select at least two points on the projection (box or lasso); the first two are used.")
        return None
    return int(rows[0]), int(rows[1])


def typical_member(dataset: Dataset, latents: Latents, label: int) -> int:
    """The image of a class whose code is closest to the class's mean code."""
    rows = np.flatnonzero(dataset.labels == label)
    centre = latents.mu[rows].mean(0)
    return int(rows[np.argmin(((latents.mu[rows] - centre) ** 2).sum(1))])


def interpolation_ui(run: Run, dataset: Dataset, latents: Latents) -> None:
    ends = endpoints_ui(dataset, latents)
    steps = st.slider("Steps", 3, 16, **kept("explore_interp_steps", 8))
    if ends is None:
        return
    a, b = ends
    za, zb = latents.mu[a], latents.mu[b]
    paths = {"Linear": lerp(za, zb, steps), "Spherical (slerp)": slerp(za, zb, steps)}
    scale = scale_for(dataset.shape[1], TILE_PX)
    for col, (name, path) in zip(st.columns(2), paths.items()):
        col.markdown(f"**{name}** · #{a} → #{b}")
        col.image(grid(decode(run.model, path), steps, scale=scale), output_format="PNG")
    interpolation_downloads_ui(run.model, run.name, paths, a, b)
    st.plotly_chart(density_figure({k: prior_log_density(v) for k, v in paths.items()}), key="explore_interp_density")
    st.caption("log p(z) under the prior N(0, I) along each path: the straight line cuts through the low-norm middle "
               "of z-space where codes are rare in high dimensions; slerp keeps the norm between the endpoints' "
               "(White 2016).")


def density_figure(curves: dict[str, np.ndarray]) -> "go.Figure":
    import plotly.graph_objects as go  # here: the Explore page's first view needs no plotly

    fig = go.Figure([go.Scatter(x=np.arange(len(v)), y=v, mode="lines+markers", name=k) for k, v in curves.items()])
    fig.update_layout(height=240, margin=dict(l=10, r=10, t=10, b=10), xaxis_title="frame",
                      yaxis_title="log p(z) (nats)", legend=dict(orientation="h", y=1.1))
    return fig


def sampling_ui(run: Run, dataset: Dataset, latents: Latents) -> None:
    cols = st.columns([1, 2, 1, 1], vertical_alignment="bottom")
    n = cols[0].selectbox("Images", [16, 36, 64], **kept("explore_sample_n", 36, [16, 36, 64]))
    temperature = cols[1].slider("Prior temperature", 0.0, 2.0, step=0.05, **kept("explore_temperature", 1.0),
                                 help="Samples z ~ N(0, T² I); T < 1 trades variety for typicality")
    seed = cols[2].number_input("Seed", 0, 2**31 - 1, step=1, **kept("explore_seed", 0))
    cols[3].button("New seed", key="explore_new_seed", on_click=_next_seed, width="stretch")
    d = run.config.model.latent_dim
    prior = decode(run.model, prior_samples(n, d, temperature, seed=int(seed)))
    posterior = decode(run.model, aggregate_posterior_samples(latents.mu, latents.logvar, n, seed=int(seed)))
    ncols = int(np.sqrt(n))
    scale = scale_for(dataset.shape[1], 40)
    left, right = st.columns(2)
    left.markdown(f"**Prior** N(0, {temperature:g}² I)")
    left.image(grid(prior, ncols, scale=scale), output_format="PNG")
    right.markdown("**Aggregate posterior** q(z) = mean of q(z|x) over the data")
    right.image(grid(posterior, ncols, scale=scale), output_format="PNG")
    with left:
        samples_download_ui(prior, ncols, f"{run.name}-prior-T{temperature:g}-seed{seed}.png", "Prior samples (PNG)",
                            "explore_dl_prior_png")
    with right:
        samples_download_ui(posterior, ncols, f"{run.name}-aggregate-posterior-seed{seed}.png",
                            "Aggregate-posterior samples (PNG)", "explore_dl_posterior_png")
    st.caption("Where the prior puts mass the encoder never sends codes (the 'prior hole'), prior samples decode to "
               "blurry or in-between images, while aggregate-posterior samples look like the data.")


def _next_seed() -> None:
    put("explore_seed", int(st.session_state.get("explore_seed", 0)) + 1)
