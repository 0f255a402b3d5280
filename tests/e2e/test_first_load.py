"""First load in a real browser: the app opens on Explore without an exception, the sidebar shows the active dataset
and the active model, and every page opens from the sidebar."""
import pytest

from tests.e2e.conftest import SERVER_ENV
from harness.browser import ARTIFACTS, exception_texts, goto, live, new_page, start_server

pytestmark = pytest.mark.e2e


def test_first_load_shows_active_dataset_and_model(app):
    sidebar = app.locator('[data-testid="stSidebar"]').inner_text()
    assert "Active dataset" in sidebar and "digits · 1,797 images · 1×8×8" in sidebar
    assert "Active model" in sidebar and "digits-default · mlp · 8-D latent" in sidebar
    app.locator(live("map")).wait_for()
    assert app.locator(live("map")).get_attribute("data-points") == "1797", "every digit is on the map"
    names = app.locator(f'{live("map")} .vx-legend-entry').all_inner_texts()
    assert names == [str(d) for d in range(10)], "the map's legend has one entry per digit class"


@pytest.mark.parametrize("title", ["Data", "Train", "Runs", "Explore"])
def test_every_page_opens_from_the_sidebar(app, title):
    goto(app, title)
    assert app.locator("h1").first.is_visible()


@pytest.mark.parametrize("path, heading", [("train", "Train"), ("runs", "Runs")])
def test_a_deep_link_on_a_fresh_server_opens_inside_the_frame(browser, tmp_path, path, heading):
    """With pages/ beside app.py, Streamlit starts in its legacy multipage mode; the first request of a fresh server
    going straight to /train must still run app.py's frame (sidebar, state) and then every other page must open."""
    server = start_server("app.py", ARTIFACTS / f"streamlit-deep-link-{path}.log",
                          env={**SERVER_ENV, "VAE_RUNS_DIR": str(tmp_path / "runs")})
    page = None
    try:
        page = new_page(browser, f"{server.url}/{path}")
        page.locator("h1", has_text=heading).first.wait_for()
        sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
        assert "Active dataset" in sidebar and "digits · 1,797 images" in sidebar, "the frame's sidebar is there"
        nav = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
        assert [t.strip().splitlines()[-1] for t in nav] == ["Data", "Train", "Explore", "Runs"], "app.py's navigation, not pages/'s"
        for title in ("Explore", "Data", heading):
            goto(page, title)
        assert not exception_texts(page), exception_texts(page)
    finally:
        if page is not None:
            page.context.close()
        server.stop()
