"""The live decoder: an st.components.v2 component (inline HTML/CSS/JS read from this folder, no build step) with one
slider per latent dimension that decodes in the browser while the user drags.

The component renders inline in the app's DOM (isolate_styles=False, no iframe, no shadow root): its root is
`div.vld-root` inside `[data-testid="stBidiComponentRegular"]`, its image `canvas.vld-canvas`, its sliders
`input.vld-slider[data-dim="d"]`. Each redraw updates `div.vld-root[data-frames]` and `[data-ms-per-frame]` (median
decode + draw time) and `window.__vaeLiveDecoder` = {frames, lastMs, medianMs, p95Ms, frameIntervalMs, times,
intervals, reset()}.

The MLP decoder's weights travel once per model: they are left out of the data as soon as the browser confirms it
holds them (it keeps them for the life of the tab, across reruns and page switches), and are sent again only if it
asks (a reloaded tab)."""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import streamlit as st

HERE = Path(__file__).resolve().parent
LOADED = "explore_live_loaded"  # hash of the weights this session's browser holds
TIMING = "explore_live_timing"  # the browser's last reported frame timing


@functools.cache
def _component():
    read = lambda name: (HERE / name).read_text(encoding="utf-8")  # noqa: E731
    return st.components.v2.component("vae_live_decoder", html=read("live_decoder.html"),
                                      css=read("live_decoder.css"), js=read("live_decoder.js"), isolate_styles=False)


def live_decoder_ui(weights: dict, dims: list[dict], z: list[float], z_version: int, scale: int, key: str,
                    on_release: Callable[[list[float]], None]) -> None:
    """Mount the decoder. dims: {index, lo, hi, kl, collapsed} in display order; on_release(z) gets the final z."""
    data = {"hash": weights["hash"], "dims": dims, "z": [float(v) for v in z], "z_version": int(z_version),
            "scale": int(scale)}
    if st.session_state.get(LOADED) != weights["hash"]:
        data["weights"] = weights
    # the state key is "report", not "value": Streamlit 1.67 unwraps a state holding only {"value": {...}} before
    # diffing it, so an on_value_change callback would never fire
    _component()(key=key, data=data, on_report_change=functools.partial(_on_report, key, on_release))


def _on_report(key: str, on_release: Callable[[list[float]], None]) -> None:
    """What the browser reported: weights loaded, weights needed, or the z at the end of a drag (with its timing)."""
    value = (st.session_state.get(key) or {}).get("report") or {}
    st.session_state[LOADED] = value.get("hash")
    if value.get("ms_per_frame") is not None:
        st.session_state[TIMING] = {k: value.get(k) for k in ("frames", "ms_per_frame", "p95_ms", "frame_interval_ms")}
    if value.get("reason") == "release" and value.get("z") is not None:
        on_release([float(v) for v in value["z"]])
