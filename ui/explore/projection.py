"""The projection: latent codes in 2-D, drawn by the live view's map in the browser (ui/explore/live/map.js), coloured
by label / factor / reconstruction error / KL, with the current z as a star. What goes to the browser: the drawn
points (at most MAX_PLOT_POINTS, as binary float32 / int32 / int16 arrays), their posterior means (for hover
reconstructions and clicks), the method's facts (vae_core.projections: exact, linear, draggable) with its own map for
new codes (a linear map's mean and axes; t-SNE's or UMAP's codes). The original images for hover are fetched by the
browser in blocks when first hovered (ui/explore/image_blocks.py). A selection comes back as dataset rows; the
selected images are shown here beside their reconstructions."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from ui.explore.data import Latents, map_key, model_asset, projection_for
from ui.explore.fits import slow_projection_ui
from ui.explore.image_blocks import images_view
from ui.explore.latent import on_browser_z, view_state
from ui.explore.live import Asset, mount
from ui.explore.posterior import map_ellipses
from ui.explore.state import SELECTION, kept, set_z, z_from_browser
from ui.server import session_id
from ui.images import grid
from vae_core.data import Dataset
from vae_core.latent import decode
from vae_core.projections import Param, Projection, default_method, methods_for, projection_method
from vae_core.runs import Run

MAX_PLOT_POINTS = 100_000  # identity/PCA are fitted on every code, at most this many drawn (a seeded subsample beyond)
MAP_HEIGHT = 540
TOOLTIP_PX = 72
SHOW_SELECTED = 24
PALETTE_SIZE = 12  # colours of the map's categorical palette (map.js PALETTE); more values: a colour scale
SELECTED_PX = 56


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
        few = len(np.unique(values)) <= PALETTE_SIZE
        names = (dataset.class_names if k == 0 and dataset.class_names else None) if few else None
        if few:
            uniq = np.unique(values)
            return Colouring(np.searchsorted(uniq, values), option[8:], True, names or [f"{v:g}" for v in uniq])
        return Colouring(values, option[8:], False)
    if option == "KL":
        return Colouring(latents.kl, "KL (nats)", False)
    return Colouring(latents.recon_error, "−log p(x|μ) (nats)", False)


def shown_rows(projection: Projection, limit: int = MAX_PLOT_POINTS) -> np.ndarray:
    """Positions into projection.rows_ that are drawn: all, or a seeded subsample of `limit`."""
    n = len(projection.rows_)
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, limit, replace=False))


def axis_titles(projection: Projection) -> tuple[str, str]:
    """The axes' names, with the share of the codes' variance each explains where the method measures it (PCA)."""
    x, y = projection.axis_names()
    ratio = getattr(projection, "explained_variance_ratio_", None)
    return (x, y) if ratio is None else (f"{x} ({ratio[0]:.0%} of variance)", f"{y} ({ratio[1]:.0%})")


def map_asset(run: Run, dataset: Dataset, latents: Latents, projection: Projection, key: str) -> Asset:
    """The drawn points of a fitted projection, cached per projection (and kept: the browser asks for it by hash)."""
    return _map_asset(key, run, dataset, latents, projection)


@st.cache_resource(max_entries=6, show_spinner=False)
def _map_asset(key: str, _run: Run, _dataset: Dataset, _latents: Latents, _projection: Projection) -> Asset:
    dataset, latents, projection = _dataset, _latents, _projection  # all named by key
    pos = shown_rows(projection)
    rows = projection.rows_[pos]
    d = latents.mu.shape[1]
    x_title, y_title = axis_titles(projection)
    spec = projection.spec
    meta = {"method": projection.method, "latent_dim": d, "exact": spec.exact, "linear": spec.linear,
            "draggable": spec.linear and d >= 2, "equal_aspect": spec.exact, "x_title": x_title, "y_title": y_title,
            "shape": list(dataset.shape), "tooltip_px": TOOLTIP_PX, "neighbours": projection.n_neighbours,
            "names": None, "total": int(dataset.n)}
    arrays = {"rows": rows.astype(np.int32), "xy": projection.embedding_[pos].astype(np.float32),
              "mu": latents.mu[rows].astype(np.float32)}
    if spec.linear:  # the star at A (z - m); dragged, z moves along A's rows
        arrays |= {"mean": projection.mean_.astype(np.float32), "components": projection.components_.astype(np.float32)}
    if not spec.exact:  # t-SNE, UMAP: placement of new z among the fitted codes, as Projection._place
        arrays["codes"] = projection.codes_[pos].astype(np.float32)
    if dataset.labels is not None:
        meta["names"] = [str(v) for v in dataset.class_names or range(int(dataset.labels.max()) + 1)]
        arrays["labels"] = dataset.labels[rows].astype(np.int16)
    return Asset("map", meta, arrays)


def colour_asset(map_: Asset, colour: Colouring) -> Asset:
    """One colouring of a map's drawn points: class indices (categorical) or values with their range."""
    values = colour.values[map_.arrays["rows"]]
    if colour.categorical:
        meta = {"categorical": True, "title": colour.title, "names": list(colour.names)}
        return Asset("colour", meta, {"values": values.astype(np.uint16)})
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    meta = {"categorical": False, "title": colour.title, "min": lo, "max": hi}
    return Asset("colour", meta, {"values": np.nan_to_num(values, nan=lo).astype(np.float32)})


def projection_ui(run: Run, dataset: Dataset, latents: Latents) -> str:
    """Controls, the map and its notes, the selection; returns the method for the URL."""
    method, params = _controls_ui(run, dataset, latents)
    if projection_method(method).slow:  # t-SNE, UMAP: settings first, then Fit (the page says how long it takes)
        projection = slow_projection_ui(run, dataset, latents, method, params)
    else:
        projection = projection_for(run, dataset, latents, method, params)
    if projection is None:  # not fitted yet, the server's queue is full, or the fit was cancelled (the page says)
        return method
    model, _ = model_asset(run)  # for reconstructions on hover; the panel says why when there is none
    key = map_key(run, dataset, latents, method, params)
    map_ = map_asset(run, dataset, latents, projection, key)
    colour = colour_asset(map_, colouring(st.session_state.explore_colour, dataset, latents))
    selection = st.session_state.get(SELECTION, [])
    view = view_state(height=MAP_HEIGHT, selection=selection, ellipses=map_ellipses(projection, latents, selection),
                      images=images_view(session_id(), dataset))
    assets = {"map": map_, "colour": colour} | ({"model": model} if model is not None else {})
    mount("map", "explore_live_map", view, assets, on_z=on_browser_z, on_select=_on_select)
    st.caption(_notes(projection, dataset, latents, params, map_.meta))
    selection_ui(run, dataset, latents, st.session_state.get(SELECTION, []))
    return method


def _on_select(payload: dict) -> None:
    """The browser selected points (a click, a box, a lasso; none: cleared); a click also moved z to the image."""
    rows = [int(r) for r in payload.get("rows") or [] if isinstance(r, (int, float))]
    st.session_state[SELECTION] = list(dict.fromkeys(rows))
    z = z_from_browser(payload.get("z"), len(st.session_state.get("explore_z") or [])) if payload.get("z") else None
    if z is not None:
        set_z(z, moved_by="browser")


def _controls_ui(run: Run, dataset: Dataset, latents: Latents) -> tuple[str, dict]:
    d = run.config.model.latent_dim
    methods = [m.name for m in methods_for(d)]
    url_method = st.query_params.get("method")
    cols = st.columns([1.2, 1.4, 1.3, 0.8], vertical_alignment="bottom")  # room for "Sample z" + its help
    method = cols[0].selectbox("Projection", methods, format_func=lambda m: projection_method(m).label,
                               **kept("explore_method", url_method if url_method in methods else default_method(d),
                                      methods))
    options = colour_options(dataset)
    cols[1].selectbox("Colour by", options, **kept("explore_colour", options[0], options))
    sample = cols[2].toggle("Sample z", help="Project one sample of q(z|x) per image instead of the posterior means",
                            **kept("explore_sample", False))
    params: dict = {"sample": bool(sample)}
    spec = projection_method(method)
    for p in spec.params:
        if p.kind == "axes":  # beside the other controls
            params[p.name] = _axes_ui(cols[3], d, latents)
    settings = [p for p in spec.params if p.kind != "axes"]
    if settings:  # in a row of their own, chosen before the fit starts (ui/explore/fits.py)
        for col, p in zip(st.columns(len(settings), vertical_alignment="bottom"), settings):
            with col:
                params[p.name] = _param_ui(setting_key(method, p.name), p)
    return method, params


def setting_key(method: str, name: str) -> str:
    """Where a projection setting's widget keeps its value (kept: survives page switches; a link restores it)."""
    return f"explore_{method}_{name}"


def _axes_ui(col, d: int, latents: Latents) -> list[int]:
    """Two different latent dimensions, the two most informative at first."""
    top = sorted(int(v) for v in latents.dims.order[:2])
    x = col.selectbox("x axis", range(d), format_func=lambda v: f"z{v}",
                      **kept("explore_x", top[0], range(d), per_model=True))
    y_options = [v for v in range(d) if v != x]
    y = col.selectbox("y axis", y_options, format_func=lambda v: f"z{v}",
                      **kept("explore_y", top[1] if top[1] != x else y_options[0], y_options, per_model=True))
    return [int(x), int(y)]


def _param_ui(name: str, p: Param):
    """One setting's widget, saved under name: a number typed in, a slider over low..high, or one of a few values."""
    if p.kind == "choice":
        return st.select_slider(p.label, list(p.choices), help=p.help or None, **kept(name, p.default, p.choices))
    if p.kind == "count":
        return st.number_input(p.label, p.low, p.high, step=p.step, help=p.help or None, **kept(name, p.default))
    step = {"step": p.step} if p.step is not None else {}
    return st.slider(p.label, p.low, p.high, help=p.help or None, **step, **kept(name, p.default))


def _notes(projection: Projection, dataset: Dataset, latents: Latents, params: dict, meta: dict) -> str:
    shown = len(shown_rows(projection))
    what = "one sample of q(z|x)" if params.get("sample") else "the posterior mean"
    sampled = " (a seeded subsample)" if shown < len(projection.rows_) else ""
    encoding = "" if latents.complete else f" (the {len(latents.rows):,} encoded so far; the rest encoding)"
    notes = [f"{shown:,} of {dataset.n:,} images drawn{sampled}{encoding}, each at {what}. Hover a point to see its "
             "image and reconstruction; click it to move z to its posterior mean; Box or Lasso to select many."]
    if shown < len(projection.rows_):
        notes.append(f"More than {MAX_PLOT_POINTS:,} points: the map draws a seeded subsample of them.")
    if meta["draggable"]:
        notes.append(f"Drag the ★ to move z in {projection.spec.plane}.")
    name = projection.spec.label
    if not projection.exact and len(projection.rows_) < len(latents.rows):
        notes.append(f"{name} ran on a random subsample of {len(projection.rows_):,} codes.")
    if not projection.exact:
        notes.append(f"{name} has no map for new points: the ★ is placed at the distance-weighted mean of the "
                     f"positions of z's {projection.n_neighbours} nearest codes (in your browser, as on the server), "
                     "so treat it as approximate; it cannot be dragged.")
    elif getattr(projection, "explained_variance_ratio_", None) is not None:
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
