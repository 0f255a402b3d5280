"""Who may use this server. It answers on loopback only unless started otherwise (.streamlit/config.toml); served
beyond loopback, an optional shared password (env VAE_PASSWORD) gates every page, and uncaught errors show only
their type (client.showErrorDetails = "type") unless the operator chose a level.

The password also gates what Streamlit's own endpoints do for a client that never runs the app: an upload from a
session without the password is refused before its body is read, and /_stcore/metrics answers empty. That holds from
the server's start (app.py is served as an st.App whose lifespan installs the gate before any client connects); a
server started another way gets it at its first script run, and uploads stored before are dropped then.
Guesses are slowed and locked out per session and per address (ui/guesses.py)."""
from __future__ import annotations

import hmac
import ipaddress
import math
import os
from contextlib import asynccontextmanager
from typing import AsyncIterator

import streamlit as st
from streamlit import config

from ui.guesses import Verdict
from ui.server import admissions, password_guesses, server_wide, session_id

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


def password_is_set() -> bool:
    """Whether this server is gated (VAE_PASSWORD set and not empty)."""
    return bool(os.environ.get(PASSWORD_ENV, ""))


@server_wide
def gate_streamlit_endpoints() -> bool:
    """Make Streamlit's own endpoints ask the gate, once per process (False where there is no runtime, e.g. AppTest).

    Streamlit's upload route (streamlit/web/server/starlette/starlette_routes.py, `_upload_put`) asks
    Runtime.is_active_session before it reads the body, and Streamlit 1.67 asks nothing else that (checked by
    tests/test_access.py): answered False for a session without the password, the upload is refused with 400 and
    nothing is read. The metrics route reads only Runtime.stats_mgr.get_stats: answered empty, it shows nothing.
    Uploads stored before this ran (the server's first script run) by sessions without the password are dropped."""
    from streamlit import runtime

    if not runtime.exists():
        return False
    rt = runtime.get_instance()
    is_active_session, get_stats = rt.is_active_session, rt.stats_mgr.get_stats

    def may_upload(sid: str) -> bool:
        return is_active_session(sid) and (not password_is_set() or admissions().admitted(sid))

    rt.is_active_session = may_upload
    rt.stats_mgr.get_stats = lambda family_names=None: {} if password_is_set() else get_stats(family_names)
    uploads = rt.uploaded_file_mgr
    for sid in list(getattr(uploads, "file_storage", {})):
        if password_is_set() and not admissions().admitted(sid):
            uploads.remove_session_files(sid)
    return True


@asynccontextmanager
async def server_lifespan(_app) -> AsyncIterator[None]:
    """The server's start (app.py's st.App): Streamlit's runtime is up and no client has connected yet, so the
    endpoints are gated before anyone can upload or read the metrics (the first script run would be too late: a
    client can ask for upload URLs without ever running the script)."""
    if password_is_set():
        gate_streamlit_endpoints()
    yield


def _clients() -> list[str]:
    """Who is guessing: this session, and its address (loopback, or a reverse proxy's, is one address for all)."""
    return [f"session {session_id()}", f"address {st.context.ip_address or 'loopback'}"]


def refusal(verdict: Verdict) -> str:
    """What the form says to a refused guess."""
    if verdict.locked:
        return f"Too many wrong passwords from here: try again in {math.ceil(verdict.wait_s / 60)} min."
    if not verdict.checked:
        return f"Not checked: wait {math.ceil(verdict.wait_s)} s after a wrong password before the next try."
    return "Wrong password."


def _check_password(password: str) -> None:
    """The form's callback: unless this client must wait, compare in constant time (hmac.compare_digest); remember
    only the outcome."""
    entered = st.session_state.pop("access_password", "") or ""
    verdict = password_guesses().attempt(_clients(), lambda: hmac.compare_digest(entered.encode(), password.encode()))
    if verdict.granted:
        admissions().admit(session_id())
    st.session_state.access_granted = verdict.granted
    st.session_state.access_refused = "" if verdict.granted else refusal(verdict)


def require_access() -> None:
    """Stop this script run, showing the password form, unless the session has entered VAE_PASSWORD (when set).

    Called by app.py before st.navigation; every page passes through app.py (ui/frame.py), so no page draws
    anything for a session without the password."""
    reduce_error_details()
    password = os.environ.get(PASSWORD_ENV, "")
    if password:
        gate_streamlit_endpoints()
    if not password or st.session_state.get("access_granted"):
        return
    st.title("VAE latent-space explorer")
    with st.form("access_form"):
        st.text_input("Password", type="password", key="access_password",
                      help="This server is shared: ask whoever started it for the password")
        st.form_submit_button("Enter", type="primary", on_click=_check_password, args=(password,))
    if st.session_state.get("access_refused"):
        st.error(st.session_state.access_refused, icon=":material/lock:")
    st.stop()
