"""Browser benchmarks, in Debian's Chromium against the real app and against bare Streamlit pages this module writes
and starts itself, side by side in one run:

- slider -> image latency: a key press on a latent slider (Explore, server decoding) until the new image is drawn
  and the map's star has moved, vs a bare page (one slider, st.image in a fragment); idle, then while another session
  trains; a change that brings nothing within 30 s is counted as lost;
- the live view while dragging, from its own timing (window.__vaeExplore.timing): decode + draw per frame and the
  event-to-paint latency (input event to the frame that shows it) on MLP digits, MLP shapes, a conv model on 32x32
  shapes and a conv model on 64x64 RGB images (a zip this module writes); hover -> image latency; the interval
  between frames while the map's star is dragged; the map at 10k, 70k and 100k points (bench/bench_map_scale.py:
  pan/zoom frame interval, hover -> an image never fetched before);
- cold start: from `streamlit run` to an interactive first page, the app vs a bare page that imports torch; and a
  second session on a warm server: from opening the URL to the live panel ready and Streamlit done, vs the bare page;
- the server's peak RSS after training on 10k generated shapes (and exploring them);
- Explore's time to interactive (map drawn, live panel decoding) for conv models on 20k 32x32 shapes and on 10k 64x64
  RGB images: the first open on a fresh server (a first block of codes, the rest in the background), a second session
  on the same server, and a restarted server reading the codes kept with the run.

    python -m bench.bench_browser            # prints the raw figures as JSON (python -m bench prints the table)
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from harness.browser import (NEXT_FRAME_JS, VIEWPORT, browser_problem, explore_api, goto, key, launch_chromium, live,
                               new_page, open_explore, start_server, wait_idle)
from harness.wait import wait_until
from bench.bench_map_scale import measure_maps

BARE_SLIDER_PAGE = '''"""The floor: one slider and st.image in a fragment, nothing else."""
import numpy as np
import streamlit as st


@st.fragment
def panel():
    v = st.slider("z", -3.0, 3.0, 0.0, 0.03, key="z")
    x = np.linspace(-1.0, 1.0, 8)
    image = 1 / (1 + np.exp(-(v * x[None, :] + 2 * x[:, None])))  # an 8x8 image that depends on v
    st.image(np.kron((255 * image).astype(np.uint8), np.ones((28, 28), np.uint8)), caption="bare image",
             output_format="PNG")


panel()
'''
BARE_TORCH_PAGE = '''"""The cold-start floor: a page that imports torch and draws one widget."""
import streamlit as st
import torch

st.title("Bare page")
st.slider("z", -3.0, 3.0, float(torch.zeros(1)[0]), key="z")
'''
N_CHANGES = 24
DRAG_MOVES = 90
SHAPES_N, SHAPES_EPOCHS = 10_000, 5
COLOUR_N = 3000  # 64x64 RGB images for the conv model
OPEN_SHAPES_N, OPEN_COLOUR_N = 20_000, 10_000  # images behind Explore's time to interactive

# --------------------------------------------------------------------------- slider -> image latency

_ARM_JS = """([caption, old, drawnSelector, starSelector]) => {
  // resolves with ms from the key press until the new image is on the page — a new <img> (found by its caption)
  // has loaded, or the element drawnSelector's data-drawn count went up — and, when starSelector is given, the
  // map's star has moved; rejects when that has not happened within 30 s (a lost change)
  const find = () => {
    const box = [...document.querySelectorAll('[data-testid="stImage"]')].find(e => e.innerText.includes(caption));
    return box ? box.querySelector('img') : null;
  };
  if (!window.__benchKeys) {
    window.__benchKeys = true;
    document.addEventListener('keydown', () => { window.__benchKeyAt = performance.now(); }, true);
  }
  const attr = (selector, name) => (selector ? (document.querySelector(selector) || {}).dataset?.[name] : null);
  const oldStar = attr(starSelector, 'star'), oldDrawn = attr(drawnSelector, 'drawn');
  window.__benchPending = new Promise((resolve, reject) => {
    let imageAt = null, starAt = starSelector ? null : 0, observer = null, watching = null;
    const done = () => {
      if (imageAt === null || starAt === null) return;
      observer.disconnect();
      window.__benchParts = {image: imageAt - window.__benchKeyAt, star: starAt - window.__benchKeyAt};
      resolve(Math.max(imageAt, starAt) - window.__benchKeyAt);
    };
    const check = () => {
      if (window.__benchKeyAt == null) return;
      if (imageAt === null && drawnSelector && attr(drawnSelector, 'drawn') !== oldDrawn) imageAt = performance.now();
      const img = drawnSelector ? null : find();
      if (imageAt === null && img && img.src && img.src !== old && img.src !== watching) {
        watching = img.src;
        const loaded = () => { imageAt = performance.now(); done(); };
        if (img.complete && img.naturalWidth > 0) loaded(); else img.addEventListener('load', loaded, {once: true});
      }
      if (starAt === null && attr(starSelector, 'star') !== oldStar) starAt = performance.now();
      done();
    };
    observer = new MutationObserver(check);
    observer.observe(document.body, {subtree: true, childList: true, attributes: true,
                                     attributeFilter: ['src', 'data-star', 'data-drawn']});
    setTimeout(() => { observer.disconnect(); reject(new Error('nothing new within 30 s')); }, 30000);
  });
  window.__benchKeyAt = null;
}"""

_SRC_JS = """caption => {
  const box = [...document.querySelectorAll('[data-testid="stImage"]')].find(e => e.innerText.includes(caption));
  const img = box ? box.querySelector('img') : null;
  return img ? img.src : null;
}"""


class SliderTarget:
    """A page with a Streamlit slider and the image it drives (an st.image found by its caption, or an element whose
    data-drawn counts the images drawn), and the map's star if any."""

    def __init__(self, page, slider: str, caption: str | None = None, drawn: str | None = None,
                 star: str | None = None):
        self.page, self.slider, self.caption, self.drawn, self.star, self.presses = page, slider, caption, drawn, star, 0

    def change(self) -> float | None:
        """Press End / Home on the slider (alternately, so the value always changes): ms until the new image loaded
        and the star moved (None if that did not happen within 30 s: a lost change)."""
        old = self.page.evaluate(_SRC_JS, self.caption)
        self.page.evaluate(_ARM_JS, [self.caption, old, self.drawn, self.star])
        thumb = self.page.locator(self.slider).first
        before = thumb.input_value()
        thumb.focus()
        thumb.press("End" if self.presses % 2 == 0 else "Home")
        self.presses += 1
        if thumb.input_value() == before:  # already at that end (a press lost to a rerun): go the other way
            thumb.press("End" if self.presses % 2 == 0 else "Home")
            self.presses += 1
        try:
            ms = self.page.evaluate("window.__benchPending")
        except Exception:  # noqa: BLE001 - playwright re-raises the page's rejection as a generic Error
            ms = None
        wait_idle(self.page, 60, quiet_ms=600)  # the page's follow-up reruns finish before the next change
        return ms


def explore_target(page) -> SliderTarget:
    """The Explore page switched to server decoding; its most informative latent slider."""
    page.locator(key("w_explore_decoder_mode")).get_by_text("Server", exact=True).click()
    wait_idle(page)
    return SliderTarget(page, '[class*="st-key-w_z"] input[type="range"]', drawn=live("server"), star=live("map"))


def bare_target(page) -> SliderTarget:
    return SliderTarget(page, f'{key("z")} input[type="range"]', caption="bare image")


def interleaved(targets: dict[str, SliderTarget], n: int) -> dict[str, list[float | None]]:
    """n changes on each target, alternating between them so both see the same machine (None: no image came)."""
    for target in targets.values():
        target.change()  # warm-up: first media fetch, first fragment run
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(n):
        for name, target in targets.items():
            samples[name].append(target.change())
    return samples


def start_training(page, epochs: int) -> None:
    """Start a job on the Train page with the form's defaults and this many epochs."""
    goto(page, "Train")
    page.locator(f"{key('tf_epochs')} input").fill(str(epochs))
    page.locator(f"{key('train_start')} button").click()
    wait_until(lambda: "running" in _progress(page), timeout=60, what="the training job to start")


def _progress(page) -> str:
    loc = page.locator('[data-testid="stProgress"]')
    return loc.first.inner_text() if loc.count() else ""


def stop_training(page) -> None:
    page.locator(f"{key('train_stop')} button").click()
    wait_until(lambda: _progress(page).startswith("stopped") or _progress(page).startswith("finished"), timeout=60,
               what="the training job to stop")


# --------------------------------------------------------------------------- the live view

# Drives a drag from inside the page, one movement per display frame, each dispatched between frames (as real input
# arrives), so the figures show what the page can do rather than how fast Playwright can send mouse events.
_DRIVE_JS = """([kind, moves]) => new Promise(resolve => {
  const api = window.__vaeExplore;
  let target, path, at = null;
  if (kind === 'slider') {
    target = document.querySelector('.vx-root[data-role="panel"] input.vx-slider');
    const lo = Number(target.min), hi = Number(target.max);
    path = i => { const t = (i % 60) / 59, phase = Math.floor(i / 60) % 2 ? 1 - t : t; return lo + (hi - lo) * phase; };
  } else {
    target = document.querySelector('.vx-root[data-role="map"] canvas.vx-map-overlay');
    at = api.star();
    path = i => { const a = 2 * Math.PI * i / moves; return [at.x + 60 * Math.sin(a), at.y + 40 * (1 - Math.cos(a))]; };
  }
  const pointer = (type, [x, y]) => target.dispatchEvent(new PointerEvent(type, {bubbles: true, clientX: x,
    clientY: y, button: 0, buttons: type === 'pointerup' ? 0 : 1, pointerId: 1}));
  if (kind === 'star') pointer('pointerdown', [at.x, at.y]);
  let i = 0;
  const step = () => setTimeout(() => {
    if (kind === 'slider') { target.value = String(path(i)); target.dispatchEvent(new Event('input', {bubbles: true})); }
    else pointer('pointermove', path(i));
    i += 1;
    if (i < moves) requestAnimationFrame(step);
    else requestAnimationFrame(() => requestAnimationFrame(() => {
      if (kind === 'slider') target.dispatchEvent(new Event('change', {bubbles: true}));
      else pointer('pointerup', path(moves - 1));
      resolve(true);
    }));
  }, 0);
  requestAnimationFrame(step);
})"""


def _timing(page) -> dict:
    return explore_api(page, "timing")


def drag_timing(page, moves: int = DRAG_MOVES) -> dict:
    """Drag the most informative live slider back and forth, a movement per frame: decode + draw per frame,
    event-to-paint latency, frame interval (the live view's own timing)."""
    if page.locator(key("w_explore_decoder_mode")).count():
        page.locator(key("w_explore_decoder_mode")).get_by_text("Live (in browser)", exact=True).click()
        wait_idle(page)
    page.locator(live("panel")).wait_for(timeout=120_000)
    explore_api(page, "reset")
    page.evaluate(_DRIVE_JS, ["slider", moves])
    t = _timing(page)
    wait_idle(page)
    return {"kernel": page.locator(live("panel")).get_attribute("data-kernel"), "decode": t["decode"],
            "paint": t["paint"], "interval": t["interval"]}


def hover_timing(page, points: int = 40) -> dict:
    """Move the mouse onto points of the map one after another: pointer event -> tooltip with both images drawn."""
    page.locator(live("map")).wait_for(timeout=120_000)
    page.locator(live("map")).scroll_into_view_if_needed()
    explore_api(page, "reset")
    n = int(page.locator(live("map")).get_attribute("data-points"))
    for row in range(0, n, max(1, n // points))[:points]:
        at = explore_api(page, "pointOnScreen", row)
        if at:
            page.mouse.move(at["x"], at["y"])
            page.wait_for_function(NEXT_FRAME_JS)
    page.mouse.move(5, 5)
    return _timing(page)["hover"]


def map_drag_timing(page, moves: int = 90) -> dict:
    """Drag the map's star (PCA: z moves in the principal plane) in a loop, a movement per frame: the interval
    between frames that show a new star, and event-to-paint of the decoded image."""
    page.locator(live("map")).wait_for(timeout=120_000)
    page.locator(live("map")).scroll_into_view_if_needed()
    explore_api(page, "reset")
    page.evaluate(_DRIVE_JS, ["star", moves])
    t = _timing(page)
    wait_idle(page)
    return {"frame_interval": t["mapFrame"], "paint": t["paint"]}


# --------------------------------------------------------------------------- cold start

def cold_start_s(playwright_browser, script: str | Path, log: Path, env: dict, ready: str) -> float:
    """Seconds from `streamlit run` to the first page idle with `ready` visible, in a fresh server and session."""
    start = time.perf_counter()
    server = start_server(script, log, env=env)
    try:
        page = new_page(playwright_browser, server.url)
        page.locator(ready).first.wait_for(timeout=120_000)
        wait_idle(page)
        seconds = time.perf_counter() - start
        page.context.close()
        return seconds
    finally:
        server.stop()


def warm_session_s(playwright_browser, url: str, ready: str) -> float:
    """Seconds from opening url in a fresh browser session (the server already warm) until `ready` is visible and
    Streamlit has finished running (50 ms quiet: no extra settling time is counted)."""
    context = playwright_browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        start = time.perf_counter()
        page.goto(url)
        page.locator(ready).first.wait_for(timeout=60_000)
        wait_idle(page, quiet_ms=50)
        return time.perf_counter() - start - 0.05
    finally:
        context.close()


def _warm_sessions(browser, app_url: str, bare_url: str, repeats: int) -> dict[str, list[float]]:
    """Alternating second sessions on the warm app (Explore, the live panel) and the warm bare torch page."""
    times: dict[str, list[float]] = {"app": [], "bare_torch": []}
    for _ in range(repeats):
        times["app"].append(warm_session_s(browser, app_url, live("panel")))
        times["bare_torch"].append(warm_session_s(browser, bare_url, f'{key("z")} input[type="range"]'))
    return times


# --------------------------------------------------------------------------- conv models for the live view

def colour_shapes_zip(path: Path, n: int = COLOUR_N, size: int = 64, seed: int = 0) -> Path:
    """A zip of n RGB PNGs: a coloured disc, square or triangle at a random place and size on a dark background of
    another colour, in one subfolder per shape (the labels)."""
    import io
    import zipfile

    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(n):
            kind = ("disc", "square", "triangle")[i % 3]
            image = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 70, 3)))
            draw = ImageDraw.Draw(image)
            r, (cx, cy) = rng.uniform(8, 20), rng.uniform(20, size - 20, 2)
            colour = tuple(int(v) for v in rng.integers(90, 256, 3))
            if kind == "disc":
                draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
            elif kind == "square":
                draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=colour)
            else:
                draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
            buffer = io.BytesIO()
            image.save(buffer, "PNG")
            zf.writestr(f"{kind}/{i:05d}.png", buffer.getvalue())
    return path


def train_conv_runs(work: Path, runs: Path) -> dict[str, Path]:
    """A conv model on 32x32 shapes and one on 64x64 RGB images, trained by the engine's CLI into the runs folder."""
    from vae_core.train import main as train_main

    data = colour_shapes_zip(work / "colour-shapes-64.zip")
    out = {"conv_shapes": runs / "bench-conv-shapes32", "conv_rgb64": runs / "bench-conv-rgb64"}
    train_main(["--data", "shapes", "--shapes-n", "10000", "--arch", "conv", "--latent-dim", "10", "--epochs", "4",
                "--out", str(out["conv_shapes"]), "--quiet"])
    train_main(["--data", str(data), "--arch", "conv", "--latent-dim", "16", "--likelihood", "gaussian", "--epochs",
                "3", "--out", str(out["conv_rgb64"]), "--quiet"])
    return out


def newest_run_timings(browser, app, path: Path) -> dict:
    """Make `path` the newest run (a new session opens on it), then drag, hover and drag the star on Explore."""
    model = path / "model.safetensors"
    os.utime(model)  # the newest run is every new session's active model
    page = new_page(browser, app.url, timeout_s=180)
    try:
        page.locator(live("panel")).wait_for(timeout=180_000)
        name = page.locator('[data-testid="stSidebar"]').inner_text()
        assert path.name in name, f"{path.name} is not the active model: {name}"
        return {"drag": drag_timing(page), "hover": hover_timing(page), "map_drag": map_drag_timing(page)}
    finally:
        page.context.close()


# --------------------------------------------------------------------------- Explore's time to interactive

def open_cases(work: Path) -> dict[str, tuple]:
    """Untrained conv models (encoding costs the same trained or not) on 20k 32x32 shapes and on 10k 64x64 RGB
    images, each with its (model config, data source)."""
    from vae_core.config import ModelConfig
    from vae_core.data import FILES_KIND

    colour = colour_shapes_zip(work / "colour-shapes-64-10k.zip", n=OPEN_COLOUR_N)
    return {"conv_shapes_20k": (ModelConfig(input_shape=(1, 32, 32), latent_dim=10, arch="conv"),
                                {"kind": "shapes", "n": OPEN_SHAPES_N, "size": 32, "seed": 0, "name": "shapes"}),
            "conv_rgb64_10k": (ModelConfig(input_shape=(3, 64, 64), latent_dim=16, arch="conv", likelihood="gaussian"),
                               {"kind": FILES_KIND, "path": str(colour), "name": "colour-shapes-64"})}


def explore_open_timings(browser, work: Path) -> dict:
    """Per case, in a runs folder of its own (the model is the newest run, so every new session's active one):
    Explore's time to interactive on a started server (warmed by a session on the Data page, so the app's own cold
    start is not counted: the cold-start figure has it) the first time the model is opened, when every code is in,
    a second session on that server; then on a restarted server reading the codes kept with the run, warmed the same
    way (restart_s) and cold, Explore being its first page (restart_cold_s)."""
    from vae_core.config import RunConfig
    from vae_core.data import load_source
    from vae_core.jobs import build_model
    from vae_core.runs import save_run
    from vae_core.runs.kept_data import keep

    out = {}
    for name, (config, source) in open_cases(work).items():
        runs = work / f"open-{name}"
        # as a run trained on the zip in the app or the CLI: it keeps a copy of the images read from files, which
        # every server start reads instead of the zip's 10,000 PNGs (vae_core/runs/kept_data.py)
        kept = keep(load_source({k: v for k, v in source.items() if k != "name"}), runs)
        source = kept.source | {"name": source["name"]}
        save_run(runs / name, build_model(config, seed=0).eval(), RunConfig(model=config, dataset=source))
        figures: dict = {}
        for phase in ("first", "restart", "restart_cold"):
            server = start_server("app.py", work / f"open-{name}-{phase}.log", env={"VAE_RUNS_DIR": str(runs)})
            try:
                if phase != "restart_cold":
                    new_page(browser, server.url + "/data", timeout_s=180).context.close()
                page, figures[f"{phase}_s"] = open_explore(browser, server.url)
                figures[f"{phase}_points"] = int(page.locator(live("map")).get_attribute("data-points"))
                if phase == "first":
                    n = source.get("n", OPEN_COLOUR_N)
                    start = time.monotonic()
                    wait_until(lambda: page.get_by_text(f"{n:,} images encoded in").count(), timeout=900,
                               what="every code encoded")
                    figures["all_codes_s"] = figures["first_s"] + time.monotonic() - start
                    second, figures["second_s"] = open_explore(browser, server.url)
                    second.context.close()
                page.context.close()
            finally:
                server.stop()
        out[name] = figures
    return out


# --------------------------------------------------------------------------- the whole browser benchmark


def measure(work: Path | None = None, n_changes: int = N_CHANGES, cold_repeats: int = 3) -> dict:
    """Every browser figure; the run trained on 10k shapes is left in work/runs (for the projection benchmark)."""
    problem = browser_problem()
    if problem:
        return {"skipped": problem}
    from playwright.sync_api import sync_playwright

    work = Path(work or tempfile.mkdtemp(prefix="vae-bench-"))
    (work / "bare_slider.py").write_text(BARE_SLIDER_PAGE)
    (work / "bare_torch.py").write_text(BARE_TORCH_PAGE)
    runs = work / "runs"
    env = {"VAE_RUNS_DIR": str(runs), "VAE_DISCONNECT_GRACE_S": "600"}
    result: dict = {"work": str(work)}
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        result["cold_start_s"] = _cold_starts(browser, work, cold_repeats)
        app = start_server("app.py", work / "app.log", env=env)
        bare = start_server(work / "bare_slider.py", work / "bare.log", cwd=work)
        bare_torch = start_server(work / "bare_torch.py", work / "bare-torch.log", cwd=work)
        try:
            explore_page, bare_page = new_page(browser, app.url), new_page(browser, bare.url)
            new_page(browser, bare_torch.url).context.close()  # its first session: the server is warm after it
            result["warm_session_s"] = _warm_sessions(browser, app.url, bare_torch.url, max(cold_repeats, 3))
            bare_torch.stop()
            targets = {"explore": explore_target(explore_page), "bare": bare_target(bare_page)}
            result["latency_idle_ms"] = interleaved(targets, n_changes)
            trainer = new_page(browser, app.url)
            start_training(trainer, epochs=10_000)
            result["latency_training_ms"] = interleaved(targets, n_changes)
            result["training_progress"] = _progress(trainer)
            stop_training(trainer)
            trainer.context.close()
            result["live_digits"] = {"drag": drag_timing(explore_page), "hover": hover_timing(explore_page),
                                     "map_drag": map_drag_timing(explore_page)}
            result |= _train_on_shapes(browser, app)
            result["server_peak_rss_mb"] = app.peak_rss_mb()
            for name, path in train_conv_runs(work, runs).items():
                result[f"live_{name}"] = newest_run_timings(browser, app, path)
            result["map_scale"] = measure_maps(browser, app, work, runs)
        finally:
            app.stop()
            bare.stop()
            bare_torch.stop()
        result["explore_open"] = explore_open_timings(browser, work)
        browser.close()
    result["shapes_run"] = str(next(p for p in sorted(runs.iterdir()) if p.name.startswith("shapes-mlp")))
    return result


def _cold_starts(browser, work: Path, repeats: int) -> dict[str, list[float]]:
    """Alternating cold starts of the app (empty runs folder: the bundled model) and of the bare torch page."""
    times: dict[str, list[float]] = {"app": [], "bare_torch": []}
    for i in range(repeats):
        env = {"VAE_RUNS_DIR": str(work / f"cold-runs-{i}")}
        times["app"].append(cold_start_s(browser, "app.py", work / "cold-app.log", env, live("panel")))
        times["bare_torch"].append(cold_start_s(browser, work / "bare_torch.py", work / "cold-bare.log", {},
                                                f'{key("z")} input[type="range"]'))
    return times


def _train_on_shapes(browser, app) -> dict:
    """In a new session: generate 10k shapes, train the default recipe on them, explore the result; RSS after."""
    page = new_page(browser, app.url)
    goto(page, "Data")
    page.locator(key("data_kind")).get_by_text("Generated shapes").click()
    wait_idle(page)
    page.locator(f"{key('shapes_n')} input").fill(str(SHAPES_N))
    page.locator(f"{key('data_use_shapes')} button").click()
    wait_until(lambda: f"{SHAPES_N:,} images" in page.locator('[data-testid="stSidebar"]').inner_text(), timeout=120,
               what="10k shapes as the active dataset")
    start = time.perf_counter()
    start_training(page, epochs=SHAPES_EPOCHS)
    wait_until(lambda: _progress(page).startswith("finished"), timeout=300, what="training on shapes to finish")
    train_s = time.perf_counter() - start
    rss_after_training = app.peak_rss_mb()
    goto(page, "Explore", timeout_s=180)
    timing = drag_timing(page)
    page.context.close()
    return {"shapes_train_s": train_s, "peak_rss_after_training_mb": rss_after_training,
            "live_mlp_shapes": {"drag": timing}}


def main() -> dict:
    result = measure()
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
