"""The Explore page's session state: the current z, widget values that survive page switches, and the URL.

Streamlit forgets the widget state of a page that is not rendered, so every Explore widget keeps a plain copy under
its name (`kept`) and is restored from it when the page comes back. The current z lives under Z with a version that
goes up whenever the server moves it (a start button, a server-side slider), which tells the browser's parts to jump
there; a z the browser moved itself (a drag, a click on the map, the pad) does not bump it, so the rerun that
follows leaves the browser's z where the user put it."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import streamlit as st

Z, Z_VERSION = "explore_z", "explore_z_version"
VIEW = "explore_view"  # (run path, dataset source) the z and the selection belong to
SELECTION = "explore_selection"  # dataset rows of the last projection selection
MAX_URL_DIMS = 256  # longer codes stay out of the URL


PER_MODEL = "explore_per_model"  # names of kept values chosen for one model (its dimensions): forgotten on a switch


def kept(name: str, default: Any, options: Sequence | None = None, per_model: bool = False) -> dict:
    """Keyword arguments (key, on_change, args) for a widget whose value is saved under `name` and restored from it
    after a page switch; a saved value no longer among `options` falls back to `default`. per_model: a choice made
    for this model (latent dimensions picked by their KL) that another model starts afresh (init_view forgets it)."""
    if per_model:
        st.session_state.setdefault(PER_MODEL, set()).add(name)
    if name not in st.session_state or (options is not None and not _valid(st.session_state[name], options)):
        st.session_state[name] = default
    key = f"w_{name}"
    if key not in st.session_state or (options is not None and not _valid(st.session_state[key], options)):
        st.session_state[key] = st.session_state[name]
    return {"key": key, "on_change": _save, "args": (name,)}


def _valid(value: Any, options: Sequence) -> bool:
    if isinstance(value, (list, tuple)):
        return all(v in options for v in value)
    return value in options


def _save(name: str) -> None:
    st.session_state[name] = st.session_state[f"w_{name}"]


def put(name: str, value: Any) -> None:
    """Set a kept widget's value from code (both its saved copy and the widget itself, before it is drawn)."""
    st.session_state[name] = value
    st.session_state[f"w_{name}"] = value


# --------------------------------------------------------------------------- the current z


def init_view(run_path: str, data_key: str, latent_dim: int) -> None:
    """Start a new session at the z in the URL when it fits this model, else at zeros; another model starts again
    at zeros, and another model or dataset clears the selection."""
    view = [run_path, data_key]
    if st.session_state.get(VIEW) == view and len(st.session_state.get(Z) or []) == latent_dim:
        return
    first = VIEW not in st.session_state
    same_model = (st.session_state.get(VIEW) or [None])[0] == run_path
    st.session_state[VIEW] = view
    st.session_state[SELECTION] = []
    if not same_model:  # dimensions chosen for the last model (z5 of 8 is another thing in a new model)
        for name in st.session_state.get(PER_MODEL, ()):
            st.session_state.pop(name, None)
            st.session_state.pop(f"w_{name}", None)
    if same_model and len(st.session_state.get(Z) or []) == latent_dim:
        return
    from_url = parse_z(st.query_params.get("z"), latent_dim) if first else None
    set_z(from_url if from_url is not None else np.zeros(latent_dim, np.float32))


def current_z() -> np.ndarray:
    return np.asarray(st.session_state[Z], dtype=np.float32)


def z_version() -> int:
    return int(st.session_state.get(Z_VERSION, 0))


def set_z(z: Sequence[float], moved_by: str = "server") -> None:
    """Store z. moved_by "server" (a button, a server slider) bumps the version so every control jumps to it;
    "browser" (reported by the browser, which is there already) does not."""
    st.session_state[Z] = [float(v) for v in np.asarray(z, dtype=np.float64).ravel()]
    if moved_by != "browser":
        st.session_state[Z_VERSION] = z_version() + 1


def z_from_browser(value, latent_dim: int) -> np.ndarray | None:
    """A z the browser reported: latent_dim finite numbers, else None (ignored)."""
    try:
        z = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return z if z.shape == (latent_dim,) and np.isfinite(z).all() else None


# --------------------------------------------------------------------------- the URL


def parse_z(text: str | None, latent_dim: int) -> np.ndarray | None:
    """A z from its URL form "0.12,-1.3,…", or None when it is missing, malformed, non-finite or the wrong length."""
    if not text:
        return None
    try:
        values = [float(v) for v in str(text).split(",")]
    except ValueError:
        return None
    if len(values) != latent_dim or not all(math.isfinite(v) for v in values):
        return None
    return np.asarray(values, dtype=np.float32)


def format_z(z: Sequence[float]) -> str:
    return ",".join(f"{float(v):.4g}" for v in z)
