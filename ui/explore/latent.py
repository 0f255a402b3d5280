"""The latent panel: where z starts (zeros, a prior sample, an encoded image), the sliders over the latent dimensions
(ordered by KL, collapsed last) with the decoded image and a strip of live traversals, the drawing pad, and the
nearest training images.

Every model the engine builds runs in the browser ("Live"): the sliders, the image and the strip are the live
view's panel, decoding on every movement. "Server" keeps st.slider widgets decoded here (also the only way for a
model too big to send). Part of the Explore page's fragment: nothing here reruns the whole page."""
from __future__ import annotations

import base64

import numpy as np
import streamlit as st

from ui.explore.data import Latents, encoder_asset, model_asset, row_labels
from ui.explore.live import Asset, mount, relay
from ui.explore.state import current_z, kept, set_z, z_from_browser, z_version
from ui.images import scale_for, to_uint8
from vae_core.data import Dataset
from vae_core.latent import decode, encode, nearest_neighbours, prior_log_density, prior_samples
from vae_core.runs import Run

MODES = ("Live (in browser)", "Server")
MODE_HELP = ("Live: the model's weights are sent to your browser once and every movement is decoded there, while "
             "you drag. Server: decoded here when you release a slider.")
GROUP = "explore"  # the browser parts of this page share one z
LIVE_TIMING = "explore_live_timing"  # the browser's last drag: frames and ms per frame
RELAYED = "explore_relayed_version"  # the z version whose image a server slider's relay last carried
SLIDERS_AT = "explore_sliders_at"  # dimension -> the z version its server slider was last given
IMAGE_PX = 224  # the decoded image's size on screen
STRIP_DIMS, STRIP_STEPS, STRIP_TILE_PX = 2, 9, 40  # the live traversal strip
NEIGHBOURS = 8
NEIGHBOUR_PX = 64
SERVER_IMAGE_PX = 160  # beside a column of sliders
PAD_PX = 150


def dim_label(d: int, latents: Latents) -> str:
    collapsed = " · collapsed" if latents.dims.collapsed[d] else ""
    return f"z{d} (KL {latents.dims.kl[d]:.2f}){collapsed}"


def slider_range(d: int, latents: Latents, z: np.ndarray) -> tuple[float, float]:
    """Dimension d's slider range: the aggregate posterior's 1st-99th percentile, widened to hold the current z."""
    lo, hi = (float(v) for v in latents.ranges[d])
    return min(lo, float(z[d])), max(hi, float(z[d]))


def latent_panel_ui(run: Run, dataset: Dataset, latents: Latents) -> None:
    """Start buttons, the decoder (live or server) and the drawing pad. The nearest images follow (neighbours_ui)."""
    st.subheader("Latent sliders")
    _start_ui(run, dataset, latents)
    asset, why = model_asset(run)
    mode = MODES[1]
    if asset is not None:
        mode = st.segmented_control("Decoder", MODES, required=True, help=MODE_HELP,
                                    **kept("explore_decoder_mode", MODES[0], MODES)) or MODES[0]
    else:
        st.caption(f"Decoded on the server when you release a slider: {why}.")
    if mode == MODES[0]:
        _live_ui(run, latents, asset)
    else:
        _server_ui(run, latents)
    if asset is not None:
        pad_ui(run, asset)


def _start_ui(run: Run, dataset: Dataset, latents: Latents) -> None:
    d = run.config.model.latent_dim
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.button("Zeros", key="explore_start_zeros", on_click=set_z, args=(np.zeros(d),),
                  help="z = 0, the prior's mean")
        st.button("Prior sample", key="explore_start_prior", on_click=_prior_start, args=(d,),
                  help="a fresh z ~ N(0, I)")
        index = st.number_input("Image #", 0, dataset.n - 1, step=1, width=90, **kept("explore_start_index", 0))
        st.button("Encode", key="explore_start_encode", on_click=_encode_start, args=(run, dataset, latents.mu),
                  help=f"z = the posterior mean of image #{index}")


def _encode_start(run: Run, dataset: Dataset, mu: np.ndarray) -> None:
    row = int(st.session_state.explore_start_index)
    code = mu[row]
    if np.isnan(code).any():  # not encoded yet (the rest of the codes is on its way): this one now
        code = encode(run.model, dataset.batch(np.array([row])))[1][0]
    set_z(code)


def _prior_start(latent_dim: int) -> None:
    draws = st.session_state.get("explore_prior_draws", 0) + 1
    st.session_state.explore_prior_draws = draws
    set_z(prior_samples(1, latent_dim, 1.0, seed=draws)[0])


def live_dims(latents: Latents, z: np.ndarray) -> list[dict]:
    """What the live decoder needs per slider, in display order (by KL, collapsed last)."""
    dims = []
    for d in latents.dims.order:
        lo, hi = slider_range(d, latents, z)
        dims.append({"index": d, "lo": round(lo, 4), "hi": round(hi, 4), "kl": float(latents.dims.kl[d]),
                     "collapsed": bool(latents.dims.collapsed[d])})
    return dims


def view_state(**fields) -> dict:
    """What every browser part of the page gets: the shared z and its version, plus the part's own fields."""
    return {"group": GROUP, "z": current_z().tolist(), "z_version": z_version(), **fields}


def on_browser_z(payload: dict) -> None:
    """A gesture in the browser ended (slider released, star dropped, pad's "Use as z"): the server follows."""
    z = z_from_browser(payload.get("z"), len(current_z()))
    if z is not None:
        set_z(z, moved_by="browser")
    if payload.get("ms_per_frame") is not None:
        st.session_state[LIVE_TIMING] = {"frames": payload.get("frames"), "ms_per_frame": payload["ms_per_frame"]}


def _live_ui(run: Run, latents: Latents, asset: Asset) -> None:
    z = current_z()
    _, h, _ = run.config.model.input_shape
    strip = [d for d in latents.dims.order if not latents.dims.collapsed[d]][:STRIP_DIMS]
    traverse = {"dims": [{"index": int(d), "lo": float(latents.ranges[d][0]), "hi": float(latents.ranges[d][1])}
                         for d in strip], "steps": STRIP_STEPS, "tile_px": STRIP_TILE_PX}
    mount("panel", "explore_live_panel", view_state(dims=live_dims(latents, z), scale=scale_for(h, IMAGE_PX),
                                                    traverse=traverse), {"model": asset}, on_z=on_browser_z)
    timing = st.session_state.get(LIVE_TIMING)
    note = f" · last drag: {timing['ms_per_frame']:.2f} ms per frame" if timing and timing.get("ms_per_frame") else ""
    st.caption(f"Drag a slider: the image and the traversal strip (z{', z'.join(str(d) for d in strip)}, the most "
               f"informative dimensions) are decoded in your browser on every movement{note}. Dimensions are "
               "ordered by their KL; ∅ marks collapsed ones (no information, last).")


def pad_ui(run: Run, asset: Asset) -> None:
    """The drawing pad (1-channel data): draw, see the reconstruction and where the code lands on the map. Mounted
    only while its expander is open (a closed one costs the first screen nothing)."""
    c, h, w = run.config.model.input_shape
    box = st.expander("Draw an image to encode it", icon=":material/draw:", key="explore_pad_open", on_change="rerun")
    if not box.open:
        return
    with box:
        if c != 1:
            st.caption(f"Drawing is for 1-channel images; this model's images have {c} channels (RGB), which a brush "
                       "of one colour cannot draw.")
            return
        st.caption(f"Draw at the data's own resolution ({h}×{w} pixels, enlarged). Each stroke is encoded in your "
                   "browser; the ◆ on the map is the drawing's code. Ink is bright on dark, like the data.")
        mount("pad", "explore_live_pad", view_state(scale=scale_for(h, PAD_PX), brush=round(max(0.6, h / 16), 1)),
              {"model": asset, "encoder": encoder_asset(run)}, on_z=on_browser_z)


def _server_ui(run: Run, latents: Latents) -> None:
    """Sliders decoded on the server, each in a fragment of its own (_server_slider_ui); the image is drawn by the
    live view's "server" part, which also takes the images the sliders' fragments send."""
    z = current_z()
    _, h, _ = run.config.model.input_shape
    image_col, slider_col = st.columns([1, 1.4])
    with image_col:
        view = view_state(image=server_image(run, z), scale=scale_for(h, SERVER_IMAGE_PX))
        mount("server", "explore_server_image", view, {}, on_z=on_browser_z)
    with slider_col, st.container(height=340 if len(z) > 6 else "content", border=False):
        for d in latents.dims.order:
            _server_slider_ui(run, latents, int(d))


def server_image(run: Run, z: np.ndarray) -> dict:
    """The image decoded here at z, for the browser: (C, H, W) uint8, base64."""
    image = decode(run.model, np.asarray(z, np.float32)[None])[0]
    pixels = (np.clip(image, 0.0, 1.0) * 255).round().astype(np.uint8)
    return {"shape": list(pixels.shape), "pixels": base64.b64encode(pixels.tobytes()).decode()}


@st.fragment
def _server_slider_ui(run: Run, latents: Latents, d: int) -> None:
    """One server slider in a fragment of its own: a change reruns only this — the slider, one decode here, and the
    relay that brings the image and the new z (the map's star) to the browser's parts; the map then asks the page's
    fragment to follow (nearest images, views, URL). Nothing waits for the rest of the page.

    The image goes with the first relay that runs after z moved (whichever slider's fragment that is: one rerun may
    carry the moves of several sliders, queued while an earlier run ran), so the last move is always answered."""
    z = current_z()
    fresh = st.session_state.get(RELAYED) != z_version()
    relay(f"explore_relay_{d}", view_state(image=server_image(run, z) if fresh else None))  # first out: the image
    st.session_state[RELAYED] = z_version()
    lo, hi = slider_range(d, latents, z)
    collapsed = bool(latents.dims.collapsed[d])
    st.slider(f"z{d} ∅" if collapsed else f"z{d}", lo, hi, value=_slider_value(d, z), step=(hi - lo) / 200,
              format="%.2f", key=f"w_z{d}", on_change=_slider_moved, args=(d,),
              help=f"mean KL {latents.dims.kl[d]:.3f} nats"
              + (" (collapsed: carries almost no information)" if collapsed else ""))


def _slider_value(d: int, z: np.ndarray) -> float | None:
    """The slider's value: z[d] put into its state when Python moved z since this slider last showed it (or it was
    forgotten on a page switch), then None (set through the state, Streamlit takes no default); else z[d] as its
    default. The default matters: a later run can re-send the slider before the browser drew the run that set its
    value, and the browser then creates it from its default — were that the range's minimum (Streamlit's default),
    the browser would show the minimum and report it as a move of this slider with the next change of any slider."""
    key, shown = f"w_z{d}", st.session_state.setdefault(SLIDERS_AT, {})
    if shown.get(d) == z_version() and key in st.session_state:
        return float(z[d])
    st.session_state[key] = float(z[d])
    shown[d] = z_version()
    return None


def _slider_moved(d: int) -> None:
    z = current_z()
    z[d] = st.session_state[f"w_z{d}"]
    set_z(z, moved_by="server")


def neighbours_ui(dataset: Dataset, latents: Latents) -> None:
    z = current_z()
    idx, dist = nearest_neighbours(z, latents.mu, NEIGHBOURS)
    labels = row_labels(dataset)
    label = lambda i: "" if labels is None else f" · {labels[i]}"  # noqa: E731
    st.markdown(f"**Nearest {dataset.name} images to z** (distance {dist[0]:.2f}–{dist[-1]:.2f}) · "
                f"log p(z) = {prior_log_density(z)[0]:.1f} nats · |z| = {np.linalg.norm(z):.2f}")
    tiles = [to_uint8(im, scale_for(im.shape[-2], NEIGHBOUR_PX)) for im in dataset.batch(idx)]
    st.image(tiles, caption=[f"#{i}{label(i)}" for i in idx], width=tiles[0].shape[1],
             output_format="PNG")
