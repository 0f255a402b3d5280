"""Runs: every saved run — compare their curves, make one the active model, download, upload, rename, delete."""
from ui.warmup import settle

settle()  # the warm-up thread may be importing pandas right now (see ui/warmup.py)
import streamlit as st

from ui.frame import require_app_frame
from ui.runs_ui import (actions_ui, latent_map_replay_ui, message_ui, onnx_import_ui, overlay_ui, pick_ui,
                        table_ui, upload_ui)
from ui.server import all_runs

require_app_frame()  # a deep link on a fresh server: run through app.py first (see ui/frame.py)

st.title("Runs")
message_ui()
with st.expander("Upload a run (.zip)", icon=":material/upload:"):
    upload_ui()
with st.expander("Import a VAE from ONNX (encoder + decoder)", icon=":material/input:"):
    onnx_import_ui()

runs = all_runs()
if not runs:
    st.info("No runs yet: train one on the Train page, or upload a run zip above.")
    st.stop()
table_ui(runs)

st.subheader("Selected run")
label = pick_ui(runs)
actions_ui(label, runs[label])
latent_map_replay_ui(runs[label])

st.subheader("Compare curves")
overlay_ui(runs)
