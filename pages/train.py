"""Train: settings, a background training job you can pause, steer and stop, and its live curves and images."""
from ui.warmup import settle

settle()  # the warm-up thread may be importing pandas right now (see ui/warmup.py)
import streamlit as st

from ui.frame import require_app_frame
from ui.remedies import applied_remedy_ui
from ui.state import active_dataset, active_run, current_job, run_dataset
from ui.theory import theory_ui
from ui.training_ui import controls_ui, init_form_state, live_ui, settings_form_ui, start_job
from vae_core.jobs import PoolFull

require_app_frame()  # a deep link on a fresh server: run through app.py first (see ui/frame.py)

init_form_state()
st.title("Train")

try:
    dataset = active_dataset()
except ValueError as exc:
    st.error(f"The active dataset cannot be loaded: {exc}")
    st.info("Choose another dataset on the Data page.")
    st.stop()

settings, live = st.columns([1, 3], gap="large")
with settings:
    c, h, w = dataset.shape
    st.caption(f"Training on **{dataset.name}** · {dataset.n:,} images · {c}×{h}×{w}")
    applied_remedy_ui()  # what a remedy just set in the form (here or on Explore)
    configs = settings_form_ui(dataset)
    if configs is not None:
        try:
            start_job(dataset, *configs)
        except PoolFull as exc:
            st.error(str(exc))
        except ValueError as exc:
            st.error(f"Cannot train on {dataset.name}: {exc}")

with live:
    job = current_job()
    controls_ui(job)
    live_ui(job, active_run())

run = active_run()
theory_ui(run, run_dataset(run) if run is not None else dataset)
