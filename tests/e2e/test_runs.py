"""Runs in a real browser: download a run as a zip, upload that zip back, make the imported run the active model and
explore it."""
from __future__ import annotations

import re
import zipfile

import pytest

from harness.browser import ARTIFACTS, goto, key, screenshot, wait_idle
from harness.wait import wait_until

pytestmark = pytest.mark.e2e

ALERT = '[data-testid="stAlert"]'


def pick_run(page, label: str) -> None:
    """Choose a run in the Runs page's selectbox as a user does: type its name, click the exact option (Streamlit's
    selectbox is a combobox that filters its options by the text in it, so a plain click shows only the current one)."""
    combobox = page.locator(key("runs_pick")).locator('input[role="combobox"]')
    combobox.click()
    combobox.fill(label)
    page.get_by_role("option", name=label, exact=True).click()
    wait_idle(page)


def activate(page, name: str, sidebar_says: str) -> None:
    """Make run `name` the active model on the Runs page, as a user does, and wait until the sidebar says so."""
    wait_idle(page)
    pick_run(page, name)
    page.locator(f"{key('runs_activate')} button").click()
    page.locator(ALERT, has_text="is the active model").wait_for()
    sidebar = page.locator('[data-testid="stSidebar"]')
    wait_until(lambda: sidebar_says in sidebar.inner_text(), "the run in the sidebar", timeout=30)


def test_download_upload_and_load_a_run(app, tmp_path, runs_dir, new_runs_removed):
    goto(app, "Runs")
    pick_run(app, "digits-default (bundled)")
    with app.expect_download() as download_info:
        app.locator(f"{key('runs_download')} button").click()
    download = download_info.value
    assert download.suggested_filename == "digits-default.zip"
    zip_path = tmp_path / download.suggested_filename
    download.save_as(zip_path)
    with zipfile.ZipFile(zip_path) as z:
        names = {n.rsplit("/", 1)[-1] for n in z.namelist()}
    assert {"model.safetensors", "config.json", "history.json"} <= names
    assert not any(n.endswith((".pt", ".pth", ".pkl", ".bin")) for n in names), "safetensors and JSON only"

    app.get_by_text("Upload a run (.zip)").click()
    app.locator(f"{key('runs_upload')} input[type=file]").set_input_files(str(zip_path))
    imported = app.locator(ALERT, has_text="Imported as")
    imported.wait_for()
    name = re.search(r"Imported as (\S+)", imported.inner_text()).group(1)
    assert (runs_dir / name / "model.safetensors").exists()

    activate(app, name, f"{name} · mlp · 8-D latent")
    screenshot(app, ARTIFACTS / "screenshots" / "runs.png")

    goto(app, "Explore")
    caption = app.locator('[data-testid="stMain"] [data-testid="stCaptionContainer"]').first.inner_text()
    assert caption.startswith(name), caption
