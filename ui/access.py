"""Who may use this server. It answers on loopback only unless started otherwise (.streamlit/config.toml); served
beyond loopback, an optional shared password (env VAE_PASSWORD) gates every page, and uncaught errors show only
their type (client.showErrorDetails = "type") unless the operator chose a level."""
from __future__ import annotations

import hmac
import ipaddress
import os

import streamlit as st
from streamlit import config

PASSWORD_ENV = "VAE_PASSWORD"


def serves_beyond_loopback() -> bool:
    """Whether the server listens on more than loopback (server.address unset, 0.0.0.0, a LAN address, a name)."""
    address = str(config.get_option("server.address") or "")
    if address == "localhost":
        return False
    try:
        return not ipaddress.ip_address(address).is_loopback
    except ValueError:  # unset (every interface) or a host name
        return True


def reduce_error_details() -> None:
    """Beyond loopback, tracebacks would show visitors our code and paths: show the exception's type only."""
    if serves_beyond_loopback() and not config.is_manually_set("client.showErrorDetails"):
        st.set_option("client.showErrorDetails", "type")


def _check_password(password: str) -> None:
    """The form's callback: compare in constant time (hmac.compare_digest), remember only the outcome."""
    entered = st.session_state.pop("access_password", "") or ""
    granted = hmac.compare_digest(entered.encode(), password.encode())
    st.session_state.access_granted = granted
    st.session_state.access_refused = not granted


def require_access() -> None:
    """Stop this script run, showing the password form, unless the session has entered VAE_PASSWORD (when set).

    Called by app.py before st.navigation; every page passes through app.py (ui/frame.py), so no page draws
    anything for a session without the password."""
    reduce_error_details()
    password = os.environ.get(PASSWORD_ENV, "")
    if not password or st.session_state.get("access_granted"):
        return
    st.title("VAE latent-space explorer")
    with st.form("access_form"):
        st.text_input("Password", type="password", key="access_password",
                      help="This server is shared: ask whoever started it for the password")
        st.form_submit_button("Enter", type="primary", on_click=_check_password, args=(password,))
    if st.session_state.get("access_refused"):
        st.error("Wrong password.", icon=":material/lock:")
    st.stop()
