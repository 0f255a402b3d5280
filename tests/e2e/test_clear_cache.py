"""A stranger's clear_cache does not wipe the server's shared state (issue 23, item 1). On a password server with one
training slot, session A (logged in, in Chromium) trains a short run X, which becomes its active model, then trains
into a run Y. A raw WebSocket client that never enters the password sends Streamlit's real `BackMsg(clear_cache=True)`
to /_stcore/stream, which Streamlit handles before any script runs. Then session B (logged in) is still refused a
second job with the limit's message, and B's Runs page still locks Y (A trains into it) and X (A has it active).

On main (job pool and sharing registry in st.cache_resource) the clear gave B a fresh pool and an empty registry: B's
Start trained a second job past the limit and both of A's runs were open to rename and delete."""
from __future__ import annotations

import time

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

from harness.browser import ARTIFACTS, goto, key, new_page, start_server, wait_idle
from harness.train_page import progress_text, start_training
from harness.wait import wait_until
from tests.e2e.test_limits import press_start, refusal
from tests.e2e.test_runs import pick_run

pytestmark = pytest.mark.e2e

PASSWORD = "open-sesame"
CAPTIONS = '[data-testid="stMain"] [data-testid="stCaptionContainer"]'


@pytest.fixture(scope="module")
def gated_one_slot(tmp_path_factory, browser):
    runs = tmp_path_factory.mktemp("clear-cache") / "runs"
    srv = start_server("app.py", ARTIFACTS / "streamlit-clear-cache.log",
                       env={"VAE_RUNS_DIR": str(runs), "VAE_THREADS": "1", "VAE_MAX_JOBS": "1",
                            "VAE_PASSWORD": PASSWORD})
    yield srv, runs
    srv.stop()


def logged_in(browser, url: str):
    """A new session that has entered the password (the app's sidebar shows)."""
    page = new_page(browser, url)
    page.locator(f"{key('access_password')} input").fill(PASSWORD)
    page.get_by_role("button", name="Enter").click()
    page.locator('[data-testid="stSidebarNav"]').wait_for()
    wait_idle(page)
    return page


def clear_cache_as_a_stranger(port: int) -> list[ForwardMsg]:
    """Connect as a browser does (subprotocol "streamlit"; no cookie, no password), send clear_cache, then ask for a
    script run: Streamlit handles one client's messages in order, so the run's end means the clear was done. The
    messages that run sent back."""
    received = []
    with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"], open_timeout=30) as ws:
        ws.send(BackMsg(clear_cache=True).SerializeToString())
        ws.send(BackMsg(rerun_script=ClientState()).SerializeToString())
        deadline = time.monotonic() + 60
        while not received or received[-1].WhichOneof("type") != "script_finished":
            msg = ForwardMsg()
            msg.ParseFromString(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            received.append(msg)
    return received


def lock_reason(page, run_name: str) -> dict:
    """What the Runs page shows B for a run: the lock's reason, and whether rename and delete are offered."""
    pick_run(page, run_name)
    controls = [f"{key('runs_new_name')} input", f"{key('runs_rename')} button",
                f"{key('runs_confirm_delete')} input", f"{key('runs_delete')} button"]
    return {"reason": " ".join(page.locator(CAPTIONS).all_inner_texts()),
            "locked": all(page.locator(c).is_disabled() for c in controls)}


def test_a_strangers_clear_cache_keeps_the_job_limit_and_the_sharing_rules(gated_one_slot, browser, _opened):
    server, runs = gated_one_slot
    a = logged_in(browser, server.url)
    b = logged_in(browser, server.url)
    _opened.extend([a, b])

    goto(a, "Train")
    start_training(a, epochs=1)
    wait_until(lambda: progress_text(a).startswith("finished"), "A's short run to finish", timeout=120)
    (x,) = [p for p in runs.iterdir() if not p.name.startswith(".")]
    sidebar = a.locator('[data-testid="stSidebar"]')
    wait_until(lambda: x.name in sidebar.inner_text(), "A's short run to become its active model", timeout=60)
    start_training(a, epochs=5000)  # holds the server's one slot until it is stopped
    y = wait_until(lambda: next((p for p in runs.iterdir() if not p.name.startswith(".") and p != x
                                 and (p / "model.safetensors").exists()), None), "A's long run to save once", timeout=120)

    replies = clear_cache_as_a_stranger(server.port)
    shown = [m.delta.new_element for m in replies if m.WhichOneof("type") == "delta"]
    assert [e.heading.body for e in shown if e.WhichOneof("type") == "heading"] == ["VAE latent-space explorer"]
    assert [e.text_input.label for e in shown if e.WhichOneof("type") == "text_input"] == ["Password"]  # no more

    goto(b, "Train")
    press_start(b)
    b_start = wait_until(lambda: refusal(b) or ("B trained" if progress_text(b).startswith("running") else ""),
                         "B's Start to be refused or to start a job", timeout=60)
    goto(b, "Runs")
    seen = {"B's Start": b_start, "A's training run": lock_reason(b, y.name), "A's active run": lock_reason(b, x.name)}
    assert "(limit 1)" in seen["B's Start"], seen
    assert "being trained by another session" in seen["A's training run"]["reason"], seen
    assert "Another session has this run as its active model" in seen["A's active run"]["reason"], seen
    assert seen["A's training run"]["locked"] and seen["A's active run"]["locked"], seen
    assert progress_text(a).startswith("running") and sorted(p for p in runs.iterdir()
                                                             if not p.name.startswith(".")) == sorted([x, y])
    a.locator(f"{key('train_stop')} button").click()
    wait_until(lambda: progress_text(a).startswith("stopped"), "A's job to stop", timeout=60)
