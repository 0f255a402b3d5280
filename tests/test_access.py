"""Who may use the server: the shared password (VAE_PASSWORD) gates every page, including deep links; error details
shrink to the exception's type when the server listens beyond loopback."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import streamlit
from streamlit import config
from streamlit.testing.v1 import AppTest

import ui.server
from ui.access import gate_streamlit_endpoints, serves_beyond_loopback
from ui.guesses import DELAY_S

ROOT = Path(__file__).resolve().parent.parent
PAGES = {"pages/data.py": "Data", "pages/train.py": "Train", "pages/runs.py": "Runs", "pages/explore.py": "Explore"}
SECRET = "correct horse battery staple"


@pytest.fixture(autouse=True)
def fresh_gate():
    """Every AppTest of this process is one client address: each test starts with no wrong guesses on record."""
    ui.server.password_guesses.reset()
    ui.server.admissions.reset()
    yield
    ui.server.password_guesses.reset()
    ui.server.admissions.reset()


@pytest.fixture
def gated(monkeypatch, tmp_path):
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("VAE_PASSWORD", SECRET)


def open_page(page: str | None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    if page:
        at.switch_page(page).run()
    return at


def enter(at: AppTest, password: str) -> AppTest:
    at.text_input(key="access_password").input(password)
    at.button[0].click().run()
    return at


def shows_app(at: AppTest) -> bool:
    """Whether anything of the app itself is on screen: a page's title, the sidebar's dataset and model."""
    return any(t.value != "VAE latent-space explorer" for t in at.title) or len(at.sidebar.caption) > 0


@pytest.mark.parametrize("page", [None, *PAGES])
def test_without_the_password_no_page_draws(gated, page):
    at = open_page(page)
    assert not at.exception
    assert not shows_app(at), [t.value for t in at.title]
    assert at.text_input(key="access_password").proto.type == at.text_input(key="access_password").proto.PASSWORD
    enter(at, "wrong")
    assert not shows_app(at) and "Wrong password" in at.error[0].value
    at.switch_page("pages/runs.py").run()  # a wrong password does not open a page either
    assert not shows_app(at)


@pytest.mark.parametrize("page", PAGES)
def test_with_the_password_every_page_opens(gated, page):
    at = enter(open_page(None), SECRET)
    assert not at.exception and shows_app(at) and not at.error
    at.switch_page(page).run()
    assert not at.exception and at.title[0].value.startswith(PAGES[page])
    assert "digits" in " ".join(c.value for c in at.sidebar.caption)
    assert "access_password" not in at.session_state  # the entered password is not kept


def test_a_guess_right_after_a_wrong_one_is_not_checked(gated):
    now = [1000.0]
    ui.server.password_guesses().clock = lambda: now[0]
    at = enter(open_page(None), "wrong")
    assert at.error[0].value == "Wrong password."
    enter(at, SECRET)  # within DELAY_S of the wrong one: refused unchecked, the right password included
    assert not shows_app(at) and at.error[0].value.startswith("Not checked: wait 1 s")
    assert not ui.server.admissions().sessions
    now[0] += DELAY_S
    enter(at, SECRET)
    assert shows_app(at) and not at.error
    assert len(ui.server.admissions().sessions) == 1  # Streamlit's upload route asks this record


def test_streamlit_asks_is_active_session_only_in_its_upload_route():
    """ui/access.py answers Runtime.is_active_session False for a session without the password, so that Streamlit's
    upload route refuses it: right while nothing else in Streamlit asks that question (checked on an upgrade)."""
    root = Path(streamlit.__file__).parent
    asks = re.compile(r"(?<!_session_mgr)\.is_active_session\(")
    callers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if asks.search(p.read_text()))
    assert callers == ["web/server/starlette/starlette_routes.py"]
    assert "async def _upload_put" in (root / callers[0]).read_text()


class Runtime:
    """Streamlit's runtime as the gate sees it: its upload store and metrics (Streamlit's own classes), two sessions."""

    def __init__(self):
        from streamlit.runtime.memory_uploaded_file_manager import MemoryUploadedFileManager
        from streamlit.runtime.stats import StatsManager

        self.uploaded_file_mgr, self.stats_mgr = MemoryUploadedFileManager("/_stcore/upload_file"), StatsManager()
        self.stats_mgr.register_provider(self.uploaded_file_mgr)

    def is_active_session(self, sid: str) -> bool:
        return sid in ("in", "out")


def test_the_gate_refuses_uploads_and_metrics_to_sessions_without_the_password(gated, monkeypatch):
    from streamlit import runtime
    from streamlit.runtime.uploaded_file_manager import UploadedFileRec

    rt = Runtime()
    for sid in ("in", "out"):  # stored before the gate was installed (the server's first script run)
        rt.uploaded_file_mgr.add_file(sid, UploadedFileRec(file_id="f", name="x.npz", type="", data=bytes(100)))
    ui.server.admissions().admit("in")
    monkeypatch.setattr(runtime, "exists", lambda: True)
    monkeypatch.setattr(runtime, "get_instance", lambda: rt)
    gate_streamlit_endpoints.reset()
    try:
        assert gate_streamlit_endpoints()
        assert [rt.is_active_session(s) for s in ("in", "out", "gone")] == [True, False, False]
        assert sorted(rt.uploaded_file_mgr.file_storage) == ["in"]  # the stranger's file is dropped
        assert rt.stats_mgr.get_stats() == {}
        monkeypatch.delenv("VAE_PASSWORD")  # the password is read on every request: unset, nothing is gated
        assert rt.is_active_session("out") and rt.stats_mgr.get_stats()["cache_memory_bytes"]
    finally:
        gate_streamlit_endpoints.reset()


def test_without_vae_password_there_is_no_gate(monkeypatch, tmp_path):
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("VAE_PASSWORD", raising=False)
    at = open_page("pages/data.py")
    assert not at.exception and at.title[0].value == "Data"


@pytest.mark.parametrize("address, beyond", [("127.0.0.1", True), ("localhost", False), ("::1", False),
                                             ("127.0.0.2", False), ("", True), ("0.0.0.0", True), ("::", True),
                                             ("192.168.1.10", True), ("my-host.lan", True)])
def test_beyond_loopback(address, beyond):
    old = config.get_option("server.address")
    try:
        config.set_option("server.address", address)
        assert serves_beyond_loopback() is (beyond if address != "127.0.0.1" else False)
    finally:
        config.set_option("server.address", old)


def test_error_details_shrink_beyond_loopback(monkeypatch, tmp_path):
    monkeypatch.setenv("VAE_RUNS_DIR", str(tmp_path / "runs"))
    old_address, old_details = config.get_option("server.address"), config.get_option("client.showErrorDetails")
    details_where = config.get_where_defined("client.showErrorDetails")
    try:
        assert not config.is_manually_set("client.showErrorDetails")
        open_page(None)
        assert config.get_option("client.showErrorDetails") == old_details == "full"  # loopback: full tracebacks
        config.set_option("server.address", "0.0.0.0")
        open_page(None)
        assert config.get_option("client.showErrorDetails") == "type"
    finally:
        config.set_option("server.address", old_address)
        config.set_option("client.showErrorDetails", old_details, where_defined=details_where)
