"""The sidebar every page shows: the active dataset and the active model."""
from __future__ import annotations

import streamlit as st

from ui.state import active_dataset, active_run


def sidebar_ui() -> None:
    with st.sidebar:
        st.markdown("**Active dataset**")
        try:
            ds = active_dataset()
            c, h, w = ds.shape
            st.caption(f"{ds.name} · {ds.n:,} images · {c}×{h}×{w}", help="Change it on the Data page")
        except ValueError as exc:
            st.caption(f"unavailable: {exc}")
        st.markdown("**Active model**")
        run = active_run()
        if run is None:
            st.caption("none yet — train one on the Train page")
        else:
            m = run.config.model
            neg_elbo = run.metrics.get("val_neg_elbo")
            elbo = f" · val −ELBO {neg_elbo:.2f}" if isinstance(neg_elbo, (int, float)) else ""
            if run.config.train.val_fraction == 0:
                elbo = " · no validation split"
            st.caption(f"{run.name} · {m.arch} · {m.latent_dim}-D latent{elbo}",
                       help=f"trained on {run.config.dataset.get('name', '?')} · {run.metrics.get('device', 'cpu')}")
