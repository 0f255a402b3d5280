"""The guard that keeps every page inside app.py's frame (page config, session state, navigation, sidebar)."""
import runpy

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner import get_script_run_ctx


def require_app_frame() -> None:
    """Run this page through app.py if Streamlit started it in its legacy multipage mode.

    Streamlit 1.67 sets `PagesManager.uses_pages_directory` when a `pages/` folder lies beside the main script, and
    only an `st.navigation` call clears it. While it is set, a page script runs alone: a deep link on a fresh server
    (`/train` as its first request; AppTest on every run) would run `pages/train.py` without app.py's page config,
    session state and sidebar. So a page that finds the flag set clears it, runs app.py in this same script run (its
    `st.navigation` routes back to this page, which then draws itself normally) and stops the outer copy. Running
    app.py here rather than calling `st.rerun()` keeps this run's widget events (a button click is not lost).
    """
    if not PagesManager.uses_pages_directory:
        return
    PagesManager.uses_pages_directory = False
    ctx = get_script_run_ctx()
    if ctx is None:
        return
    runpy.run_path(str(ctx.pages_manager.main_script_path), run_name="__main__")
    st.stop()
