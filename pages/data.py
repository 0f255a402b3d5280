"""Data: choose the bundled digits, generated shapes, or your own files; see samples, classes, shape and range."""
import streamlit as st

from ui.data_ui import CHOICES, message_ui, source_choice_ui, source_ui, summary_ui, upload_ui
from ui.frame import require_app_frame
from ui.state import active_dataset

require_app_frame()  # a deep link on a fresh server: run through app.py first (see ui/frame.py)

st.title("Data")
source = CHOICES[source_choice_ui()]
if source.reads_files:
    upload_ui(source)
else:
    source_ui(source)
message_ui()

st.divider()
try:
    dataset = active_dataset()
except ValueError as exc:
    st.error(f"The active dataset cannot be loaded: {exc}")
    st.stop()
st.subheader(f"Active dataset: {dataset.name}")
summary_ui(dataset)
