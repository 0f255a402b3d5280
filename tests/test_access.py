"""Who may use the server: the shared password (VAE_PASSWORD) gates every page, including deep links; error details
shrink to the exception's type when the server listens beyond loopback."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from ui.access import serves_beyond_loopback

ROOT = Path(__file__).resolve().parent.parent
PAGES = {"pages/data.py": "Data", "pages/train.py": "Train", "pages/runs.py": "Runs", "pages/explore.py": "Explore"}
SECRET = "correct horse battery staple"


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
