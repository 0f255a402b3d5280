"""The latent sliders: one per dimension (ordered by KL, collapsed last), the decoded image, the nearest training
images, and the starting points (zeros, a prior sample, an encoded image).

MLP decoders get the live decoder (decoding in the browser while dragging); conv decoders, or anyone who picks
"Server", get st.slider widgets decoded here. The panel is a fragment, so moving a slider reruns only it; when the
user moved z, it then asks for one full rerun so the projection marker and the views held at z follow."""
from __future__ import annotations

import numpy as np
import streamlit as st

from ui.explore_data import Latents, row_labels, run_mtime
from ui.explore_state import current_z, kept, set_z, take_z_moved, z_version
from ui.images import scale_for, to_uint8
from ui.live_decoder import TIMING, live_decoder_ui
from ui.state import run_for
from vae_core.data import Dataset
from vae_core.latent import decode, export_decoder_weights, nearest_neighbours, prior_log_density, prior_samples
from vae_core.runs import Run

MODES = ("Live (in browser)", "Server")
MODE_HELP = ("Live: the decoder's weights are sent to your browser once and every slider movement is decoded there, "
             "while you drag. Server: decoded here when you release the slider.")
IMAGE_PX = 224  # the decoded image's size on screen
NEIGHBOURS = 8
NEIGHBOUR_PX = 64
SERVER_IMAGE_PX = 160  # beside a column of sliders


def dim_label(d: int, latents: Latents) -> str:
    collapsed = " · collapsed" if latents.dims.collapsed[d] else ""
    return f"z{d} (KL {latents.dims.kl[d]:.2f}){collapsed}"


def slider_range(d: int, latents: Latents, z: np.ndarray) -> tuple[float, float]:
    """Dimension d's slider range: the aggregate posterior's 1st-99th percentile, widened to hold the current z."""
    lo, hi = (float(v) for v in latents.ranges[d])
    return min(lo, float(z[d])), max(hi, float(z[d]))


@st.fragment
def latent_panel_ui(run: Run, dataset: Dataset, latents: Latents) -> None:
    """The whole panel; reruns alone when one of its widgets changes."""
    st.subheader("Latent sliders")
    _start_ui(run, dataset, latents)
    mlp = run.config.model.arch == "mlp"
    mode = MODES[1]
    if mlp:
        mode = st.segmented_control("Decoder", MODES, required=True, help=MODE_HELP,
                                    **kept("explore_decoder_mode", MODES[0], MODES)) or MODES[0]
    else:
        st.caption("This model has a convolutional decoder, so images are decoded on the server when you release a "
                   "slider.")
    if mode == MODES[0]:
        _live_ui(run, latents)
    else:
        _server_ui(run, latents)
    _neighbours_ui(dataset, latents)
    if take_z_moved():
        st.rerun(scope="app")  # the projection marker and the traversals follow the new z


def _start_ui(run: Run, dataset: Dataset, latents: Latents) -> None:
    d = run.config.model.latent_dim
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.button("Zeros", key="explore_start_zeros", on_click=set_z, args=(np.zeros(d),),
                  help="z = 0, the prior's mean")
        st.button("Prior sample", key="explore_start_prior", on_click=_prior_start, args=(d,),
                  help="a fresh z ~ N(0, I)")
        index = st.number_input("Image #", 0, dataset.n - 1, step=1, width=90, **kept("explore_start_index", 0))
        st.button("Encode", key="explore_start_encode", on_click=_encode_start, args=(latents.mu,),
                  help=f"z = the posterior mean of image #{index}")


def _encode_start(mu: np.ndarray) -> None:
    set_z(mu[int(st.session_state.explore_start_index)])


def _prior_start(latent_dim: int) -> None:
    draws = st.session_state.get("explore_prior_draws", 0) + 1
    st.session_state.explore_prior_draws = draws
    set_z(prior_samples(1, latent_dim, 1.0, seed=draws)[0])


@st.cache_data(max_entries=8, show_spinner=False)
def decoder_weights(run_path: str, mtime: float) -> dict:
    """The MLP decoder's weights for the browser, exported once per model file."""
    return export_decoder_weights(run_for(run_path).model)


def live_dims(latents: Latents, z: np.ndarray) -> list[dict]:
    """What the live decoder needs per slider, in display order (by KL, collapsed last)."""
    dims = []
    for d in latents.dims.order:
        lo, hi = slider_range(d, latents, z)
        dims.append({"index": d, "lo": round(lo, 4), "hi": round(hi, 4), "kl": float(latents.dims.kl[d]),
                     "collapsed": bool(latents.dims.collapsed[d])})
    return dims


def _live_ui(run: Run, latents: Latents) -> None:
    z = current_z()
    _, h, _ = run.config.model.input_shape
    live_decoder_ui(decoder_weights(str(run.path), run_mtime(run)), live_dims(latents, z), z.tolist(), z_version(),
                    scale_for(h, IMAGE_PX), key="explore_live", on_release=lambda z: set_z(z, moved_by="browser"))
    timing = st.session_state.get(TIMING)
    note = f" · last drag: {timing['ms_per_frame']:.2f} ms per frame" if timing and timing.get("ms_per_frame") else ""
    st.caption(f"Drag a slider: the image is decoded in your browser on every movement{note}. Dimensions are "
               "ordered by their KL; ∅ marks collapsed ones (no information, last).")


def _server_ui(run: Run, latents: Latents) -> None:
    z = current_z()
    _sync_sliders(latents, z)
    image_col, slider_col = st.columns([1, 1.4])
    with slider_col, st.container(height=340 if len(z) > 6 else "content", border=False):
        for d in latents.dims.order:
            lo, hi = slider_range(d, latents, z)
            collapsed = bool(latents.dims.collapsed[d])
            st.slider(f"z{d} ∅" if collapsed else f"z{d}", lo, hi, step=(hi - lo) / 200, format="%.2f",
                      key=f"w_z{d}", on_change=_slider_moved, args=(d,), help=f"mean KL {latents.dims.kl[d]:.3f} nats"
                      + (" (collapsed: carries almost no information)" if collapsed else ""))
    with image_col:
        image = decode(run.model, current_z()[None])[0]
        st.image(to_uint8(image, scale_for(image.shape[-2], SERVER_IMAGE_PX)), caption="decoded on the server",
                 output_format="PNG")


def _sync_sliders(latents: Latents, z: np.ndarray) -> None:
    """Put the current z into the slider widgets when Python moved it (or they were forgotten on a page switch)."""
    keys = [f"w_z{d}" for d in range(len(z))]
    if st.session_state.get("explore_sliders_at") == z_version() and all(k in st.session_state for k in keys):
        return
    for d, key in enumerate(keys):
        st.session_state[key] = float(z[d])
    st.session_state.explore_sliders_at = z_version()


def _slider_moved(d: int) -> None:
    z = current_z()
    z[d] = st.session_state[f"w_z{d}"]
    set_z(z, moved_by="slider")


def _neighbours_ui(dataset: Dataset, latents: Latents) -> None:
    z = current_z()
    idx, dist = nearest_neighbours(z, latents.mu, NEIGHBOURS)
    labels = row_labels(dataset)
    label = lambda i: "" if labels is None else f" · {labels[i]}"  # noqa: E731
    st.markdown(f"**Nearest {dataset.name} images to z** (distance {dist[0]:.2f}–{dist[-1]:.2f}) · "
                f"log p(z) = {prior_log_density(z)[0]:.1f} nats · |z| = {np.linalg.norm(z):.2f}")
    tiles = [to_uint8(im, scale_for(im.shape[-2], NEIGHBOUR_PX)) for im in dataset.batch(idx)]
    st.image(tiles, caption=[f"#{i}{label(i)}" for i in idx], width=tiles[0].shape[1],
             output_format="PNG")
