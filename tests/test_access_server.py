"""The password gates what a client can make a real server hold (issue 23, item 4), probed as an attacker would:
a WebSocket client that never entered VAE_PASSWORD asks for upload URLs and PUTs 4 × 50 MB with the XSRF cookie from
/_stcore/health (each refused; the server's memory does not grow), reads /_stcore/metrics (nothing in it), and guesses
passwords as fast as the server answers (about one checked guess a second, then locked out after ten, even for the
right password and from a new session, while a client of another address is still checked). The same client, once it
has entered the password, uploads.

On main every upload was stored (server RSS +200 MB, kept after the client left), the metrics listed every session and
cache, and 14 guesses a second were checked with no lockout."""
from __future__ import annotations

import time
import urllib.error
from contextlib import contextmanager
import urllib.request
import uuid
from pathlib import Path

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ClientState_pb2 import ClientState
from streamlit.proto.Common_pb2 import FileURLsRequest
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState, WidgetStates
from websockets.sync.client import connect

from harness.browser import ARTIFACTS, start_server
from ui.guesses import DELAY_S, MAX_FAILURES

pytestmark = pytest.mark.slow

PASSWORD = "open-sesame"
MB = 2**20


def gated_server(name: str, runs: Path):
    return start_server("app.py", ARTIFACTS / f"streamlit-{name}.log",
                        env={"VAE_RUNS_DIR": str(runs), "VAE_THREADS": "1", "VAE_PASSWORD": PASSWORD})


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = gated_server("access-uploads", tmp_path_factory.mktemp("access") / "runs")
    yield srv
    srv.stop()


class RawClient:
    """A Streamlit session spoken to as the browser's JavaScript would, over /_stcore/stream, without a browser."""

    def __init__(self, ws):
        self.ws = ws
        self.widgets: dict[str, str] = {}  # the password form's widgets: "Password" and "Enter" -> widget id

    def receive(self, until: str, timeout: float = 60) -> list[ForwardMsg]:
        """The messages up to and including the first of type `until`."""
        received, deadline = [], time.monotonic() + timeout
        while not received or received[-1].WhichOneof("type") != until:
            msg = ForwardMsg()
            msg.ParseFromString(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            received.append(msg)
        return received

    def run(self, widgets: list[WidgetState] = ()) -> list:
        """One script run with these widget states; the elements it drew (remembering the form's widget ids)."""
        state = ClientState(widget_states=WidgetStates(widgets=list(widgets)))
        self.ws.send(BackMsg(rerun_script=state).SerializeToString())
        shown = [m.delta.new_element for m in self.receive("script_finished") if m.WhichOneof("type") == "delta"]
        for e in shown:
            if e.WhichOneof("type") == "text_input":
                self.widgets[e.text_input.label] = e.text_input.id
            if e.WhichOneof("type") == "button":
                self.widgets[e.button.label] = e.button.id
        return shown

    def enter(self, password: str) -> list[str]:
        """Submit the password form; the error messages the run showed."""
        shown = self.run([WidgetState(id=self.widgets["Password"], string_value=password),
                          WidgetState(id=self.widgets["Enter"], trigger_value=True)])
        return [e.alert.body for e in shown if e.WhichOneof("type") == "alert"]

    def upload_url(self) -> str:
        """Ask for an upload URL, as st.file_uploader's JavaScript does (Streamlit answers before any script runs)."""
        request_id = str(uuid.uuid4())
        self.ws.send(BackMsg(file_urls_request=FileURLsRequest(request_id=request_id, file_names=["x.npz"]))
                     .SerializeToString())
        (reply,) = [m for m in self.receive("file_urls_response") if m.WhichOneof("type") == "file_urls_response"]
        assert reply.file_urls_response.response_id == request_id
        return reply.file_urls_response.file_urls[0].upload_url


@contextmanager
def raw_client(port: int, headers: dict | None = None):
    with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"], open_timeout=30,
                 additional_headers=headers) as ws:
        yield RawClient(ws)


def xsrf_cookie(url: str) -> str:
    """The XSRF cookie any visitor gets from /_stcore/health."""
    with urllib.request.urlopen(url + "/_stcore/health", timeout=10) as r:
        return r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]


def put_file(url: str, path: str, size: int) -> int | str:
    """PUT a file of `size` bytes as st.file_uploader does (multipart, the XSRF token in header and cookie): the
    response's status, or "reset" when the server answered and closed before taking the whole body."""
    token = xsrf_cookie(url)
    head = b'--B\r\nContent-Disposition: form-data; name="file"; filename="x.npz"\r\n' \
           b"Content-Type: application/octet-stream\r\n\r\n"
    body = head + bytes(size) + b"\r\n--B--\r\n"
    request = urllib.request.Request(url + path, data=body, method="PUT", headers={
        "Content-Type": "multipart/form-data; boundary=B", "X-Xsrftoken": token,
        "Cookie": f"_streamlit_xsrf={token}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status
    except urllib.error.HTTPError as refused:
        return refused.code
    except urllib.error.URLError as failed:
        if isinstance(failed.reason, (ConnectionResetError, BrokenPipeError)):
            return "reset"
        raise


def rss_mb(pid: int) -> float:
    """The process's resident memory now (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def test_uploads_before_the_password_are_refused_and_not_held(server):
    with raw_client(server.port) as stranger:
        shown = stranger.run()  # the page's first run: the password form and nothing else
        assert [e.text_input.label for e in shown if e.WhichOneof("type") == "text_input"] == ["Password"]
        before = rss_mb(server.process.pid)
        statuses = [put_file(server.url, stranger.upload_url(), 50 * MB) for _ in range(4)]
        grown = rss_mb(server.process.pid) - before
        refused = all(s == "reset" or 400 <= s < 500 for s in statuses)
        assert refused and grown < 40, (statuses, f"RSS +{grown:.0f} MB")

        assert stranger.enter(PASSWORD) == []  # the same session, once it entered the password, may upload
        assert put_file(server.url, stranger.upload_url(), MB) == 204


def test_metrics_are_not_readable(server):
    with raw_client(server.port) as visitor:
        visitor.run()  # a session came and went: the metrics would count it
    with urllib.request.urlopen(server.url + "/_stcore/metrics", timeout=10) as r:
        text = r.read().decode()
    assert not [line for line in text.splitlines() if line and not line.startswith("# EOF")], text


def test_a_fresh_server_refuses_uploads_and_metrics_before_any_page_was_ever_loaded(tmp_path):
    # the gate goes in at the server's start (app.py's st.App lifespan), not at the first script run: a client that
    # never runs the script, on a server where no page has been loaded yet, may not upload nor read the metrics
    server = gated_server("access-first", tmp_path / "runs")
    try:
        with raw_client(server.port) as stranger:  # connected, never ran the app
            before = rss_mb(server.process.pid)
            statuses = [put_file(server.url, stranger.upload_url(), 20 * MB) for _ in range(3)]
            grown = rss_mb(server.process.pid) - before
            assert all(s == "reset" or 400 <= s < 500 for s in statuses) and grown < 30, (statuses, grown)
            with urllib.request.urlopen(server.url + "/_stcore/metrics", timeout=10) as r:
                text = r.read().decode()
            assert not [line for line in text.splitlines() if line and not line.startswith("# EOF")], text
    finally:
        server.stop()


def test_guesses_are_slowed_then_locked_out(tmp_path):
    server = gated_server("access-guesses", tmp_path / "runs")
    try:
        guess_until_locked_out(server)
    finally:
        server.stop()


def guess_until_locked_out(server) -> None:
    with raw_client(server.port) as guesser:
        guesser.run()
        answers, started = [], time.monotonic()
        while not any("Too many" in a for a in answers[-1:]) and time.monotonic() - started < 60:
            (answer,) = guesser.enter(f"guess {len(answers)}")
            answers.append(answer)
        elapsed = time.monotonic() - started
        checked = answers.count("Wrong password.")
        assert checked == MAX_FAILURES - 1 and "Too many" in answers[-1], answers  # the Nth failure locks
        assert elapsed >= (MAX_FAILURES - 1) * DELAY_S, (elapsed, answers)  # at most one checked guess per delay
        assert len(answers) > MAX_FAILURES, answers  # the client tried faster than that: the rest waited unchecked

        assert any("Too many" in a for a in guesser.enter(PASSWORD))  # locked: even the right password waits
    with raw_client(server.port) as newcomer:  # a new session from the same address is locked out too
        newcomer.run()
        assert any("Too many" in a for a in newcomer.enter(PASSWORD))
    # a client of a local reverse proxy (X-Forwarded-For, trusted from loopback by uvicorn) has its own address
    with raw_client(server.port, {"X-Forwarded-For": "203.0.113.9"}) as elsewhere:
        elsewhere.run()
        assert elsewhere.enter("wrong") == ["Wrong password."]
