"""First load in a real browser: the app opens on Explore without an exception, the sidebar shows the active dataset
and the active model, and every page opens from the sidebar."""
import pytest

from tests.e2e.harness import goto, key, plotly_traces

pytestmark = pytest.mark.e2e


def test_first_load_shows_active_dataset_and_model(app):
    sidebar = app.locator('[data-testid="stSidebar"]').inner_text()
    assert "Active dataset" in sidebar and "digits · 1,797 images · 1×8×8" in sidebar
    assert "Active model" in sidebar and "digits-default · mlp · 8-D latent" in sidebar
    names = [t["name"] for t in plotly_traces(app, key("explore_projection_chart"))]
    assert [str(d) for d in range(10)] == names[:10], "the projection has one trace per digit class"


@pytest.mark.parametrize("title", ["Data", "Train", "Runs", "Explore"])
def test_every_page_opens_from_the_sidebar(app, title):
    goto(app, title)
    assert app.locator("h1").first.is_visible()
