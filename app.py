"""The app's frame: page config, navigation over app_pages/, and the sidebar with the active dataset and model."""
import streamlit as st

from ui.sidebar import sidebar_ui
from ui.state import init_state

st.set_page_config(page_title="VAE latent-space explorer", page_icon="🧭", layout="wide")
init_state()
page = st.navigation([
    st.Page("app_pages/data.py", title="Data", icon="🗂️"),
    st.Page("app_pages/train.py", title="Train", icon="🏋️"),
    st.Page("app_pages/explore.py", title="Explore", icon="🧭", default=True),
    st.Page("app_pages/runs.py", title="Runs", icon="📁"),
])
sidebar_ui()
page.run()
