"""First load in a real browser: the app opens on Explore without an exception, the sidebar shows the active dataset
and the active model, and every page opens from the sidebar."""
import pytest

from tests.e2e.harness import goto, live

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
