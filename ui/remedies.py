"""One-click remedies, the one mechanism behind every remedy button (KL vanishing on Train, the weak-model warning on
Train and Explore): a vae_core.diagnosis.Remedy's settings written into the Train form's state before its widgets
draw, β also onto the running job, and a note beside the form saying what was set."""
from __future__ import annotations

from typing import Sequence

import streamlit as st

from vae_core.diagnosis import Remedy

FORM_KEYS = {  # config field a remedy sets -> the Train form's widget key (ui/training_ui.py FORM_DEFAULTS)
    "epochs": "tf_epochs", "latent_dim": "tf_latent", "arch": "tf_arch", "likelihood": "tf_likelihood",
    "beta": "tf_beta", "warmup_steps": "tf_warmup", "free_bits": "tf_free_bits",
}
BUTTONS_PER_ROW = 3


def apply_remedy(remedy: Remedy) -> None:
    """Set the remedy in the Train form (a widget callback: before the form draws); β also on the running job."""
    s = st.session_state
    for name, value in remedy.settings.items():
        s[FORM_KEYS[name]] = value
    job = s.get("job")
    if "beta" in remedy.settings and job is not None and job.state in ("running", "paused"):
        job.set_beta(remedy.settings["beta"])
        s.live_beta = remedy.settings["beta"]
    s.remedy_applied = remedy.name  # the Train page's live fragment redraws the whole page, form included
    s.remedy_note = remedy


def remedy_buttons_ui(remedies: Sequence[Remedy], key_prefix: str) -> Remedy | None:
    """One button per remedy (key: key_prefix + its name), in rows; returns the one clicked in this run, if any."""
    clicked = None
    for start in range(0, len(remedies), BUTTONS_PER_ROW):
        row = remedies[start:start + BUTTONS_PER_ROW]
        for column, remedy in zip(st.columns(BUTTONS_PER_ROW), row):
            if column.button(remedy.label, key=f"{key_prefix}{remedy.name}", on_click=apply_remedy, args=(remedy,),
                             help=_describe(remedy), width="stretch"):
                clicked = remedy
    return clicked


def applied_remedy_ui() -> None:
    """Beside the Train form, once: what the last remedy clicked set (on this page or on Explore)."""
    if "remedy_applied" in st.session_state:
        return  # the live view is about to redraw the whole page (ui/training_ui.py): say it in that run
    remedy = st.session_state.pop("remedy_note", None)
    if remedy is not None:
        st.success(f"Set in the form: {_describe(remedy)}. Press **Start training** to train with it.",
                   icon=":material/tune:")


def _describe(remedy: Remedy) -> str:
    return ", ".join(f"{name.replace('_', ' ')} = {value:g}" if isinstance(value, (int, float)) else
                     f"{name.replace('_', ' ')} = {value}" for name, value in remedy.settings.items())
