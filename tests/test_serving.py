"""The real server as the app's config starts it (no --server.address): it listens on loopback only, refuses
cross-origin reads, sets its XSRF cookie, refuses an upload without the XSRF token and a WebSocket from another
origin. Read from the served responses, not from the config file."""
from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import urllib.request
from pathlib import Path

import pytest

from harness.browser import ARTIFACTS, start_server

pytestmark = pytest.mark.slow

EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = tmp_path_factory.mktemp("serving") / "runs"
    srv = start_server("app.py", ARTIFACTS / "streamlit-serving.log", address=None,
                       env={"VAE_RUNS_DIR": str(runs), "VAE_THREADS": "1"})
    yield srv
    srv.stop()


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the TCP sockets listening on port (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def non_loopback_address() -> str | None:
    """This machine's address on its default route, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def get(url: str, headers: dict | None = None):
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
        return r.status, r.headers


def test_listens_on_loopback_only(server):
    assert listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1, and no IPv6 or wildcard socket
    other = non_loopback_address()
    if other is None:
        pytest.skip("this machine has no non-loopback address to try")
    with pytest.raises(ConnectionRefusedError), socket.create_connection((other, server.port), timeout=5):
        pass


def test_no_cross_origin_reads_and_an_xsrf_cookie(server):
    status, headers = get(server.url + "/_stcore/health", {"Origin": EVIL})
    assert status == 200
    assert headers.get("Access-Control-Allow-Origin") not in ("*", EVIL)
    cookie = headers.get("Set-Cookie") or ""
    assert cookie.startswith("_streamlit_xsrf=") and "samesite=lax" in cookie.lower(), cookie
    _, page = get(server.url + "/", {"Origin": EVIL})
    assert page.get("Access-Control-Allow-Origin") not in ("*", EVIL)


def test_an_upload_without_the_xsrf_token_is_refused(server):
    request = urllib.request.Request(server.url + "/_stcore/upload_file/some-session/some-file", method="PUT",
                                     data=b"--x--\r\n", headers={"Origin": EVIL,
                                                                 "Content-Type": "multipart/form-data; boundary=x"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 403


def test_a_websocket_from_another_origin_is_refused(server):
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    url = f"ws://127.0.0.1:{server.port}/_stcore/stream"

    async def handshake(origin: str) -> int:
        try:
            async with connect(url, origin=origin, subprotocols=["streamlit"]):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    def status(origin: str) -> int:
        # in a thread of its own: in the whole suite Playwright's sync API already runs an event loop in this one
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, handshake(origin)).result(timeout=60)

    assert status(EVIL) == 403
    assert status(server.url) == 101  # the app's own origin is let in (the check is real)
