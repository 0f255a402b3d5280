"""End-to-end fixtures: one Streamlit server for the session (temporary runs folder, free loopback port), Debian's
Chromium through Playwright, a fresh browser context (= a fresh Streamlit session) per `open_app()`, and after every
test a check that no page shows a Streamlit exception.

Without Chromium (or Playwright) the browser tests skip with a loud reason; with CI set they fail instead."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from harness.browser import ARTIFACTS, browser_problem, exception_texts, launch_chromium, new_page, start_server

SERVER_ENV = {
    "VAE_THREADS": "1",  # the test machine's 2 cores are shared by the server, Chromium and pytest
    "VAE_MAX_JOBS": "3",  # the concurrency test trains in three sessions at once
    "VAE_DISCONNECT_GRACE_S": "5",  # jobs of closed test contexts stop soon instead of eating CPU for 2 minutes
}


_NOT_RUN: list[str] = []  # why browser tests were skipped, for the terminal summary


def _require_browser() -> None:
    """Skip (locally) or fail (CI) when the browser tests cannot run."""
    problem = browser_problem()
    if problem is None:
        return
    _NOT_RUN.append(problem)
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but the browser tests cannot run: {problem}", pytrace=False)
    pytest.skip(f"!!! BROWSER TESTS NOT RUN: {problem} !!!")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say it once more at the end, where nobody can miss it."""
    if _NOT_RUN:
        terminalreporter.write_sep("!", f"BROWSER TESTS DID NOT RUN: {_NOT_RUN[0]}", red=True, bold=True)


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e") / "runs"


@pytest.fixture(scope="session")
def server(runs_dir):
    """`streamlit run app.py` on a free port with a temporary runs folder; stopped at the end of the session."""
    _require_browser()
    ARTIFACTS.mkdir(exist_ok=True)
    srv = start_server("app.py", ARTIFACTS / "streamlit-e2e.log", env={**SERVER_ENV, "VAE_RUNS_DIR": str(runs_dir)})
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def browser(server):
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def new_runs_removed(runs_dir):
    """Remove the runs a test saved (its jobs must have ended), so later sessions start on the bundled model."""
    before = set(runs_dir.iterdir()) if runs_dir.exists() else set()
    yield
    for path in set(runs_dir.iterdir()) - before:
        if path.is_dir() and not path.name.startswith("."):
            shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def _opened() -> list:
    """The pages a test opened."""
    return []


@pytest.fixture(autouse=True)
def no_streamlit_exceptions(request, _opened):
    """After each test: no page it opened shows a Streamlit exception (failed tests also leave screenshots)."""
    yield
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    errors = []
    for i, page in enumerate(_opened):
        try:
            if failed:
                name = re.sub(r"[^\w.-]", "_", request.node.name)
                (ARTIFACTS / "failures").mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "failures" / f"{name}-{i}.png"))
            errors += exception_texts(page)
        finally:
            page.context.close()
    assert not errors, "Streamlit showed an exception:\n" + "\n---\n".join(errors)


@pytest.fixture
def open_app(browser, server, _opened):
    """open_app() -> a new page (own context, own Streamlit session) on the app after its first run."""

    def make():
        page = new_page(browser, server.url)
        _opened.append(page)
        return page

    return make


@pytest.fixture
def app(open_app):
    """One page on the app (a fresh session)."""
    return open_app()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell whether the test failed."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
