"""The weak-model warning: vae_core.diagnosis's findings on a saved model, on Train once its job has ended (and
whenever the page shows a finished model) and on Explore for the active model, with their remedies as one-click
settings (ui/remedies.py). Cached per run file and dataset: a page redraw does not re-encode the images."""
from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from ui.explore.data import run_mtime, source_json
from ui.remedies import remedy_buttons_ui
from ui.server import dataset_for, run_for
from vae_core.data import Dataset
from vae_core.diagnosis import Diagnosis, diagnose_run
from vae_core.runs import MODEL_FILE, Run

TRAIN_PAGE = "pages/train.py"


def diagnosis_for(run: Run, dataset: Dataset) -> Diagnosis | None:
    """The run's diagnosis on this dataset, or None when the images are not the shape it takes."""
    if tuple(dataset.shape) != tuple(run.config.model.input_shape):
        return None
    try:
        return _diagnosis(str(run.path), run_mtime(run), source_json(dataset))
    except (ValueError, OSError):  # the run went away or its split does not fit these images: nothing to say
        return None


@st.cache_data(max_entries=32, show_spinner="Checking the model…")
def _diagnosis(run_path: str, mtime: float, source: str) -> Diagnosis:
    return diagnose_run(run_for(run_path), dataset_for(json.loads(source)))


def weak_model_ui(run: Run | Path | None, dataset: Dataset, page: str) -> Diagnosis | None:
    """The warning with its findings and remedy buttons when the run is weak (nothing otherwise). On Explore
    (page="explore") a remedy also opens Train, its form set."""
    if isinstance(run, Path):
        run = run_for(run) if (run / MODEL_FILE).exists() else None  # a job stopped before its first step saved none
    found = diagnosis_for(run, dataset) if run is not None else None
    if found is None or not found.weak:
        return found
    lines = "\n".join(f"- {finding.message}" for finding in found.findings)
    st.warning(f"**{run.name} is a weak model.**\n\n{lines}\n\nRemedies (each sets the Train form):",
               icon=":material/report:")
    clicked = remedy_buttons_ui(found.remedies, key_prefix=f"weak_{page}_")
    if page == "explore":
        st.caption("A remedy opens Train with it set in the form; press Start training there.")
        if clicked is not None:
            st.switch_page(TRAIN_PAGE)
    return found
