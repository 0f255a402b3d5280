"""The weak-model check on Explore, in a place of one height above the map: "Checking the model…", then what it found,
a weak model's warning and remedies (ui/diagnosis_ui.py) behind a button that opens them over the page. The check
encodes and decodes up to 2,000 images, so it runs after the map and the panel are out; its warning used to arrive
above them and push the map down under the user's pointer (tests/e2e/test_explore_steady.py)."""
from __future__ import annotations

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from ui.diagnosis_ui import diagnosis_for, weak_model_ui
from ui.explore.data import model_data_key
from vae_core.data import Dataset
from vae_core.runs import Run

LINE_PX = 42  # the check's place: one button's height (a caption is shorter)
CHECKED = "explore_model_checked"  # session state: the model files (and data) this session has seen checked


def model_check_line_ui(run: Run, dataset: Dataset) -> DeltaGenerator | None:
    """The check's place above the map, with its verdict when this session has seen it (the diagnosis is cached),
    else "Checking the model…" and the place, for model_check_ui once the first screen is out."""
    place = st.container(height=LINE_PX, border=False).empty()
    if model_data_key(run, dataset) in st.session_state.get(CHECKED, set()):
        _verdict_ui(run, dataset, place)
        return None
    place.caption("Checking the model…")
    return place


def model_check_ui(run: Run, dataset: Dataset, place: DeltaGenerator | None) -> None:
    """Run the check (after the first screen) and say what it found in the place model_check_line_ui left."""
    if place is not None:
        _verdict_ui(run, dataset, place)
        st.session_state.setdefault(CHECKED, set()).add(model_data_key(run, dataset))


def _verdict_ui(run: Run, dataset: Dataset, place: DeltaGenerator) -> None:
    found = diagnosis_for(run, dataset)  # its spinner, the first time, where the page is (below the map)
    if found is None:
        place.caption("The model check does not apply to these images.")
    elif not found.weak:
        place.caption(f"Model check: nothing weak found in {run.name}.")
    else:
        with place.container(), st.popover(f"**{run.name} is a weak model**: what was found, and remedies",
                                           icon=":material/report:"):
            weak_model_ui(run, dataset, page="explore")  # a remedy opens Train with the form set
