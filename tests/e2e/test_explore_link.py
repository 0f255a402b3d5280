"""A copied Explore address opened in a new browser session shows the same view: run, data, projection, colouring,
z and open tab (issue 25 item 3; the restore rules and refusals: tests/test_explore_link.py)."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from harness.browser import click_point, explore_api, key, live, new_page, show_views, wait_idle
from harness.wait import wait_until

pytestmark = pytest.mark.e2e


def choose(page, widget: str, option: str) -> None:
    """Pick an option of a keyed selectbox as a user does (type to filter, click the exact option)."""
    combobox = page.locator(key(widget)).locator('input[role="combobox"]')
    combobox.click()
    combobox.fill(option)
    page.get_by_role("option", name=option, exact=True).click()
    wait_idle(page)


def shown_choice(page, widget: str) -> str:
    """What a keyed selectbox shows (its combobox's value)."""
    return page.locator(key(widget)).locator('input[role="combobox"]').input_value()


def open_tab(page) -> str:
    return page.locator('[data-testid="stTab"][aria-selected="true"]').first.inner_text().strip()


def query(page) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def test_a_copied_link_opens_the_same_view_in_a_new_session(app, browser, server, _opened):
    click_point(app, 300)  # z moves to an image's code
    choose(app, "w_explore_colour", "KL")
    show_views(app)
    app.locator('[data-testid="stTab"]', has_text="Sampling").click()
    wait_idle(app)
    z = np.asarray(explore_api(app, "z"))
    link = wait_until(lambda: app.url if query(app).get("tab") == "Sampling" and query(app).get("colour") == "KL"
                      and np.allclose([float(v) for v in query(app)["z"].split(",")], z, atol=1e-3) else None,
                      timeout=30, what="the address to carry the view")
    said = query(app)
    assert said["run"] == "digits-default (bundled)" and said["data"] == "digits" and said["method"] == "pca"

    other = new_page(browser, link)  # another person's browser: a new session on the same server
    _opened.append(other)
    # Streamlit goes idle when its script is done; the live panel mounts once its bundle has come and been read,
    # which on a loaded machine came after that (CI: window.__vaeExplore was not there yet)
    other.locator(live("panel")).wait_for()
    np.testing.assert_allclose(explore_api(other, "z"), z, atol=1e-3)
    assert shown_choice(other, "w_explore_colour") == "KL"
    assert shown_choice(other, "w_explore_method") == "PCA"
    assert other.get_by_text(re.compile(r"digits-default")).first.is_visible()
    show_views(other)
    assert open_tab(other) == "Sampling"
    assert query(other) == said  # the restored view writes the same link back
