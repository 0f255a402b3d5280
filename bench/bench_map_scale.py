"""The map at the size of real datasets, in Chromium against the real app: for maps of 10k, 70k (MNIST's size) and
100k points (28x28 images, an untrained MLP: drawing does not depend on the model), the interval between frames while
the map is panned and zoomed (requestAnimationFrame timestamps, a pointer movement or a wheel step per frame,
dispatched from inside the page) and hover latency: pointer event -> the frame that shows the point's original image,
each point in a block of images never fetched before (ui/explore/image_blocks.py), and -> the tooltip with its
reconstruction; the blocks' fetch time alone (resource timing). Called by bench/bench_browser.py's measure;
`python -m bench.bench_map_scale` runs it alone."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from harness.browser import explore_api, launch_chromium, live, new_page, start_server, wait_idle
from harness.wait import wait_until

SIZES = (10_000, 70_000, 100_000)
SIDE = 28
PAN_FRAMES = 120
HOVERS = 30

# Pans the map in a circle then zooms in and out by wheel steps, one event per display frame, dispatched between frames
# (as real input is); resolves with the intervals between the frames (requestAnimationFrame timestamps).
_PAN_JS = """([frames]) => new Promise(resolve => {
  const target = document.querySelector('.vx-root[data-role="map"] canvas.vx-map-overlay');
  const r = target.getBoundingClientRect(), cx = r.left + r.width / 2, cy = r.top + r.height / 2;
  const pointer = (type, x, y) => target.dispatchEvent(new PointerEvent(type, {bubbles: true, clientX: x, clientY: y,
    button: 0, buttons: type === 'pointerup' ? 0 : 1, pointerId: 1}));
  const at = i => { const a = 2 * Math.PI * i / frames; return [cx + 120 * Math.sin(a), cy + 80 * (1 - Math.cos(a))]; };
  const stamps = [];
  let i = 0;
  pointer('pointerdown', cx, cy);
  const step = (now) => {
    stamps.push(now);
    if (i < frames) pointer('pointermove', ...at(i));
    else if (i === frames) pointer('pointerup', ...at(frames - 1));
    else target.dispatchEvent(new WheelEvent('wheel', {bubbles: true, cancelable: true, clientX: cx, clientY: cy,
      deltaY: (i - frames) % 40 < 20 ? -60 : 60}));
    i += 1;
    if (i < 2 * frames) requestAnimationFrame(step);
    else resolve(stamps.slice(1).map((t, k) => t - stamps[k]));
  };
  requestAnimationFrame(step);
})"""


# the image blocks' fetches (resource timing): request start to the last byte, and bytes on the wire
_FETCHES_JS = """() => performance.getEntriesByType('resource').filter(e => e.name.includes('/media/vxi-'))
  .map(e => ({ms: e.responseEnd - e.startTime, bytes: e.encodedBodySize}))"""


def _summary(values: list[float]) -> dict:
    v = np.asarray(values, float)
    return {"count": int(v.size), "median": float(np.median(v)) if v.size else None,
            "p95": float(np.quantile(v, 0.95)) if v.size else None}


def save_map_run(runs: Path, work: Path, n: int) -> Path:
    """An untrained MLP on n random 28x28 images (a .npy file the run names): Explore draws all n points."""
    from vae_core.config import ModelConfig, RunConfig
    from vae_core.data import FILES_KIND
    from vae_core.jobs import build_model
    from vae_core.runs import save_run

    data = work / f"map-{n}.npy"
    np.save(data, (np.random.default_rng(n).random((n, SIDE, SIDE)) * 255).astype(np.uint8))
    config = ModelConfig(input_shape=(1, SIDE, SIDE), latent_dim=8, hidden_sizes=(64,))
    source = {"kind": FILES_KIND, "path": str(data), "name": f"map-{n}"}
    model = build_model(config, seed=0).eval()
    return save_run(runs / f"bench-map-{n}", model, RunConfig(model=config, dataset=source))


def map_timings(page, n: int) -> dict:
    """Pan/zoom frame intervals and hover latencies on the page's map of n points."""
    map_ = page.locator(live("map"))
    map_.wait_for(timeout=300_000)
    map_.scroll_into_view_if_needed()
    # the map opens on the first block of codes and fills in as the rest is encoded (vae_core/encoding.py)
    wait_until(lambda: map_.get_attribute("data-points") == str(n), timeout=300, what=f"all {n:,} points on the map")
    wait_idle(page, timeout_s=300)  # the rest of the page drawn first (its fragments busy the server)
    explore_api(page, "reset")
    intervals = page.evaluate(_PAN_JS, [PAN_FRAMES])
    pan_draw = explore_api(page, "timing")["mapPan"]
    map_.locator("button", has_text="Reset view").click()
    explore_api(page, "reset")
    stride = -(-max(256, n // HOVERS) // 256) * 256  # a new block of images for every point
    hovered = 0
    for row in range(0, n, stride)[:HOVERS]:
        at = explore_api(page, "pointOnScreen", row)
        page.mouse.move(at["x"], at["y"])
        shown = map_.get_attribute("data-hover-row")
        wait_until(lambda: map_.get_attribute("data-hover-image") == shown, timeout=30, what="the hovered image")
        hovered += 1
        page.mouse.move(5, 5)
    timing = explore_api(page, "timing")
    fetches = page.evaluate(_FETCHES_JS)
    return {"points": n, "drawn": int(map_.get_attribute("data-drawn")), "frame_interval": _summary(intervals),
            "pan_draw": pan_draw, "hover": timing["hover"], "hover_image_first": timing["hoverImage"],
            "block_fetch": _summary([f["ms"] for f in fetches]),
            "block_bytes": int(np.median([f["bytes"] for f in fetches])) if fetches else None, "hovered": hovered}


def measure_maps(browser, app, work: Path, runs: Path, sizes: tuple[int, ...] = SIZES) -> dict:
    """Each size's run made the newest (a new session opens on it), then its map measured."""
    result = {}
    for n in sizes:
        path = save_map_run(runs, work, n)
        os.utime(path / "model.safetensors")
        page = new_page(browser, app.url, timeout_s=300)
        try:
            result[f"map_{n // 1000}k"] = map_timings(page, n)
        finally:
            page.context.close()
    return result


def main() -> dict:
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="vae-bench-map-"))
    runs = work / "runs"
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        app = start_server("app.py", work / "app.log", env={"VAE_RUNS_DIR": str(runs)})
        try:
            result = measure_maps(browser, app, work, runs)
        finally:
            app.stop()
            browser.close()
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
