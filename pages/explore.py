"""Explore: the active model's latent space — the map (hover, click, drag the star, select), the latent sliders with
the image and traversals decoded in the browser, the drawing pad, and the server's views (traversals, manifold,
interpolation, sampling)."""
import streamlit as st

from ui.explore.data import (encoding_note, encoding_status_ui, encoding_watched, explore_dataset, latents_for,
                             rerun_by_encoding, source_json)
from ui.explore.latent import latent_panel_ui, neighbours_ui
from ui.explore.projection import projection_ui
from ui.explore.link import link_notes_ui, restore_from_link, sync_link
from ui.explore.model_check import model_check_line_ui, model_check_ui
from ui.explore.state import init_view
from ui.explore.views import views_shown, views_ui
from ui.frame import require_app_frame
from ui.state import active_run, rerun_if_deleted
from ui.theory import theory_ui

require_app_frame()  # a deep link on a fresh server: run through app.py first (see ui/frame.py)


@st.fragment
def explore_ui(run, dataset, latents) -> None:
    """Everything that follows z, in one fragment: a browser event or a server slider reruns this, not the page.
    The panel comes first, so a server-decoded image goes out before the map and the views are drawn; what lies below
    the first screen (the nearest images, the views) only once the page is scrolled there."""
    with rerun_if_deleted(run):  # a run deleted meanwhile: the page runs again and deactivates it
        left, right = st.columns([3, 2], gap="large")
        with right:
            latent_panel_ui(run, dataset, latents)
        with left:
            method = projection_ui(run, dataset, latents)
        if views_shown() and latents.complete:  # they need every code (encoding_note says so meanwhile)
            with right:
                neighbours_ui(dataset, latents)
            views_ui(run, dataset, latents)
        sync_link(run, dataset, method)


st.title("Explore the latent space")
restore_from_link()  # a shared link's run, data and view, on this session's first visit (ui/explore/link.py)
run = active_run()
if run is None:
    st.info("No active model yet: train one on the Train page, or load one on the Runs page.")
    st.stop()
dataset, which = explore_dataset(run)
if dataset is None:
    st.info(which)
    st.stop()
latents = latents_for(run, dataset)
init_view(str(run.path), source_json(dataset), run.config.model.latent_dim)
# Nothing above the map changes height once it is drawn (tests/e2e/test_explore_steady.py): the encoding keeps its
# place while this session has watched it, and the model check (run after the first screen) has a place of one height
watched = encoding_watched(run, dataset, latents)
about = f"**{run.name}** ({run.config.model.arch}, {run.config.model.latent_dim}-D latent) on {which}"
st.caption(f"{about}." if watched else f"{about}: {encoding_note(dataset, latents)}")
link_notes_ui(dataset, run.config.model.latent_dim, again=rerun_by_encoding())
if watched:
    encoding_status_ui(run, dataset, latents)
check = model_check_line_ui(run, dataset)
explore_ui(run, dataset, latents)
model_check_ui(run, dataset, check)  # a weak model says so above the map, its one-click remedies opening Train
theory_ui(run, dataset)
