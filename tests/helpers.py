"""Shared test helpers: stopping the jobs AppTests started, a server beyond loopback for a block (polling with a
deadline lives in harness/wait.py)."""
from __future__ import annotations

from contextlib import contextmanager

from streamlit import config


def stop_session_jobs(apps) -> None:
    """Stop and join the training job each AppTest session started (a fixture's teardown)."""
    for at in apps:
        if "job" in at.session_state:
            at.session_state["job"].stop()
            at.session_state["job"].join(timeout=30)


@contextmanager
def serving_beyond_loopback():
    """server.address = 0.0.0.0 for the block. Both it and the error-details level the app sets for such a server
    (ui/access.py: reduce_error_details) are put back after, so no later test runs on a server it did not ask for."""
    address, details = config.get_option("server.address"), config.get_option("client.showErrorDetails")
    details_where = config.get_where_defined("client.showErrorDetails")
    try:
        config.set_option("server.address", "0.0.0.0")
        yield
    finally:
        config.set_option("server.address", address)
        config.set_option("client.showErrorDetails", details, where_defined=details_where)
