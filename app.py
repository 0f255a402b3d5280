"""The app's frame: page config, navigation over pages/, and the sidebar with the active dataset and model.

`streamlit run app.py` finds the `app = st.App(...)` below and serves this file as an ASGI app: the server process
imports it once (as the module `app`, not `__main__`), which installs the password's gate on Streamlit's own
endpoints before the first client connects (ui/access.py: server_lifespan). Every session's script run executes it
as `__main__`: the frame below."""
import streamlit as st

if __name__ != "__main__":  # the server process, once, before any client (streamlit run / uvicorn app:app)
    from ui.access import server_lifespan

    app = st.App(__file__, lifespan=server_lifespan)
else:  # a session's script run
    from ui.access import require_access
    from ui.sidebar import sidebar_ui
    from ui.state import init_state
    from ui.warmup import warm_imports

    st.set_page_config(page_title="VAE latent-space explorer", page_icon=":material/explore:", layout="wide")
    require_access()  # the shared password, when VAE_PASSWORD is set (ui/access.py)
    init_state()
    page = st.navigation([
        st.Page("pages/data.py", title="Data", icon=":material/dataset:"),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
        st.Page("pages/explore.py", title="Explore", icon=":material/explore:", default=True),
        st.Page("pages/runs.py", title="Runs", icon=":material/folder_open:"),
    ])
    sidebar_ui()
    page.run()
    warm_imports()  # after the page: what other pages import, in a background thread
