"""Explore in a real browser, on the bundled digits model: a latent slider moved with the keyboard changes the
decoded image; dragging in the live decoder redraws its canvas during the drag; clicking a point of the projection
shows that image and moves the sliders to its code."""
from __future__ import annotations

import re

import numpy as np
import pytest

from tests.e2e.harness import ARTIFACTS, ROOT, key, plotly_traces, screenshot, wait_idle
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

LIVE = ".vld-root"
LIVE_SLIDERS = f"{LIVE} input.vld-slider"
CANVAS_HASH_JS = """() => {
  const c = document.querySelector('canvas.vld-canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let h = 0;
  for (let i = 0; i < d.length; i += 4) h = (Math.imul(h, 31) + d[i] + 7 * d[i + 1] + 13 * d[i + 2]) >>> 0;
  return h;
}"""
NEXT_FRAME_JS = "() => new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(() => resolve(true))))"


def server_image_src(page) -> str:
    return page.locator('[data-testid="stImage"]', has_text="decoded on the server").locator("img").first \
        .get_attribute("src")


def neighbours_caption(page) -> str:
    """The captions under the nearest training images ("#60 · 3 · d=0.00 | #62 · …"), in order."""
    captions = page.locator('[data-testid="stImageCaption"], [data-testid="caption"]').all_inner_texts()
    return " | ".join(c for c in captions if re.match(r"#\d+ · ", c))


def selected_images(page) -> int:
    """How many images the selection view shows: images after the "Selected: …" heading, before the sliders' panel."""
    return page.evaluate("""() => {
      const heading = [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')]
        .find(e => e.innerText.startsWith('Selected: '));
      const panel = [...document.querySelectorAll('h1, h2, h3')].find(e => e.innerText.startsWith('Latent sliders'));
      if (!heading || !panel) return 0;
      const between = e => (heading.compareDocumentPosition(e) & Node.DOCUMENT_POSITION_FOLLOWING)
        && (panel.compareDocumentPosition(e) & Node.DOCUMENT_POSITION_PRECEDING);
      return [...document.querySelectorAll('[data-testid="stImage"] img')].filter(between).length;
    }""")


def nearest_heading(page) -> str:
    """The line above the nearest images, which states z's norm and prior log-density."""
    return page.locator('[data-testid="stMarkdownContainer"]', has_text=re.compile(r"\|z\| = ")).first.inner_text()


def frames(page) -> int:
    return int(page.locator(LIVE).get_attribute("data-frames") or 0)


def test_keyboard_moves_a_latent_slider_and_the_decoded_image_changes(app):
    app.locator(key("w_explore_decoder_mode")).get_by_text("Server", exact=True).click()
    wait_idle(app)
    before = server_image_src(app)
    top_dim = app.locator('[class*="st-key-w_z"]').first  # sliders are ordered by KL: the most informative first
    thumb = top_dim.locator('input[type="range"]')
    value = thumb.input_value()
    thumb.focus()
    thumb.press("ArrowRight")
    wait_until(lambda: thumb.input_value() != value, timeout=10, what="the slider to move")
    wait_idle(app)
    after = wait_until(lambda: (src := server_image_src(app)) != before and src, "a newly decoded image", timeout=30)
    assert after.endswith(".png")
    for _ in range(10):
        thumb.press("ArrowRight")
    wait_idle(app)
    assert float(thumb.input_value()) > float(value)
    assert server_image_src(app) not in (before, after), "every slider change decodes a new image"


def test_live_decoder_redraws_during_a_drag(app):
    app.locator(f'{LIVE}[data-state="ready"]').wait_for()
    slider = app.locator(LIVE_SLIDERS).first
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    lo, hi, value = slider.evaluate("e => [Number(e.min), Number(e.max), Number(e.value)]")
    x, y = box["x"] + box["width"] * (value - lo) / (hi - lo), box["y"] + box["height"] / 2
    heading = nearest_heading(app)

    app.mouse.move(x, y)
    app.mouse.down()
    seen_frames, seen_pixels = [frames(app)], [app.evaluate(CANVAS_HASH_JS)]
    for i in range(1, 9):
        app.mouse.move(x + 9 * i, y)
        app.wait_for_function(NEXT_FRAME_JS)
        seen_frames.append(frames(app))
        seen_pixels.append(app.evaluate(CANVAS_HASH_JS))
    app.mouse.up()

    assert all(b > a for a, b in zip(seen_frames, seen_frames[1:])), f"a frame per movement: {seen_frames}"
    assert len(set(seen_pixels)) >= 6, "the canvas shows a new image while the mouse button is still down"
    assert float(slider.input_value()) > value
    timing = app.evaluate("() => window.__vaeLiveDecoder")
    assert timing["frames"] >= 8 and timing["medianMs"] is not None
    # on release the final z goes back to Python: the server-side views follow it
    wait_until(lambda: nearest_heading(app) != heading, timeout=30, what="the nearest images to follow the released z")


def bundled_codes() -> np.ndarray:
    """Posterior means of the bundled digits under the bundled model, as the page computes them."""
    from vae_core.data import load_source
    from vae_core.latent import encode
    from vae_core.runs import load_run

    run = load_run(ROOT / "assets" / "runs" / "digits-default")
    return encode(run.model, load_source("digits"))[1]


def point_on_screen(page, trace: int, index: int) -> dict:
    """The dataset row and the page coordinates of one point of the projection."""
    return page.evaluate("""([trace, index]) => {
      const gd = document.querySelector('.st-key-explore_projection_chart .js-plotly-plot');
      const t = gd._fullData[trace], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
      const r = gd.getBoundingClientRect();
      return {row: t.customdata[index][0], x: r.left + xa._offset + xa.l2p(t.x[index]),
              y: r.top + ya._offset + ya.l2p(t.y[index])};
    }""", [trace, index])


def test_click_a_projection_point_shows_its_image_and_moves_the_sliders(app):
    traces = plotly_traces(app, key("explore_projection_chart"))
    assert traces[3]["name"] == "3" and traces[3]["n"] > 100
    app.locator(key("explore_projection_chart")).scroll_into_view_if_needed()
    point = point_on_screen(app, 3, 7)
    app.mouse.click(point["x"], point["y"])
    selected = app.locator('[data-testid="stMarkdownContainer"]', has_text="Selected: 1 image").first
    selected.wait_for()
    row = int(re.search(r"#(\d+)", selected.inner_text()).group(1))  # the point under the mouse (maybe a neighbour)
    wait_idle(app)
    assert selected_images(app) >= 1, "the selected image is shown beside its reconstruction"
    wait_until(lambda: neighbours_caption(app).startswith(f"#{row}"), timeout=30, what=f"image #{row} nearest to z")
    mu = bundled_codes()[row]
    app.locator(f'{LIVE}[data-state="ready"]').wait_for()
    sliders = app.locator(LIVE_SLIDERS).evaluate_all(
        "es => es.map(e => [Number(e.dataset.dim), Number(e.value), (Number(e.max) - Number(e.min)) / 200])")
    for dim, value, step in sliders:
        assert abs(value - mu[dim]) <= step + 1e-4, f"slider z{dim} at {value}, the image's code is {mu[dim]}"
    star = next(t for t in plotly_traces(app, key("explore_projection_chart")) if t["name"].startswith("current z"))
    assert star["n"] == 1
    screenshot(app, ARTIFACTS / "screenshots" / "explore-selection.png")
