"""Browser benchmarks, in Debian's Chromium against the real app and against bare Streamlit pages this module writes
and starts itself, side by side in one run:

- slider -> image latency: a key press on a latent slider (Explore, server decoding) until the new image has loaded,
  vs the same on a bare page (one slider, st.image in a fragment); idle, then while another session trains;
- the live decoder's ms per frame while dragging, from the component's own requestAnimationFrame timing;
- cold start: from `streamlit run` to an interactive first page, the app vs a bare page that imports torch;
- the server's peak RSS after training on 10k generated shapes (and exploring them).

    python -m bench.bench_browser            # prints the raw figures as JSON (python -m bench prints the table)
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from tests.e2e.harness import browser_problem, goto, key, launch_chromium, new_page, start_server, wait_idle
from tests.helpers import wait_until

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

# --------------------------------------------------------------------------- slider -> image latency

_ARM_JS = """([caption, old]) => {
  const find = () => {
    const box = [...document.querySelectorAll('[data-testid="stImage"]')].find(e => e.innerText.includes(caption));
    return box ? box.querySelector('img') : null;
  };
  if (!window.__benchKeys) {
    window.__benchKeys = true;
    document.addEventListener('keydown', () => { window.__benchKeyAt = performance.now(); }, true);
  }
  window.__benchPending = new Promise((resolve, reject) => {
    let observer = null;
    const finish = img => {
      const done = () => resolve(performance.now() - window.__benchKeyAt);
      if (img.complete && img.naturalWidth > 0) done(); else img.addEventListener('load', done, {once: true});
    };
    const check = () => {
      const img = find();
      if (img && img.src && img.src !== old && window.__benchKeyAt != null) {
        if (observer) observer.disconnect();
        finish(img);
        return true;
      }
      return false;
    };
    observer = new MutationObserver(check);
    observer.observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
    setTimeout(() => { observer.disconnect(); reject(new Error('no new image within 30 s')); }, 30000);
  });
  window.__benchKeyAt = null;
}"""

_SRC_JS = """caption => {
  const box = [...document.querySelectorAll('[data-testid="stImage"]')].find(e => e.innerText.includes(caption));
  const img = box ? box.querySelector('img') : null;
  return img ? img.src : null;
}"""


class SliderTarget:
    """A page with a Streamlit slider and the image it drives (found by its caption)."""

    def __init__(self, page, slider: str, caption: str):
        self.page, self.slider, self.caption, self.presses = page, slider, caption, 0

    def change(self) -> float | None:
        """Press End / Home on the slider (alternately, so the value always changes): ms until the new image loaded
        (None if none came within 30 s)."""
        old = self.page.evaluate(_SRC_JS, self.caption)
        self.page.evaluate(_ARM_JS, [self.caption, old])
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
    return SliderTarget(page, '[class*="st-key-w_z"] input[type="range"]', "decoded on the server")


def bare_target(page) -> SliderTarget:
    return SliderTarget(page, f'{key("z")} input[type="range"]', "bare image")


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


# --------------------------------------------------------------------------- live decoder

def live_decoder_timing(page, moves: int = DRAG_MOVES) -> dict:
    """Drag the first live slider back and forth; the component's own timing (decode + draw per frame)."""
    page.locator(key("w_explore_decoder_mode")).get_by_text("Live (in browser)", exact=True).click()
    wait_idle(page)
    page.locator('.vld-root[data-state="ready"]').wait_for()
    slider = page.locator(".vld-root input.vld-slider").first
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    y, left, width = box["y"] + box["height"] / 2, box["x"] + 4, box["width"] - 8
    page.evaluate("() => window.__vaeLiveDecoder && window.__vaeLiveDecoder.reset()")
    page.mouse.move(left + width / 2, y)
    page.mouse.down()
    for i in range(moves):
        phase = (i % 30) / 29 if (i // 30) % 2 == 0 else 1 - (i % 30) / 29
        page.mouse.move(left + width * phase, y)
        page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")
    page.mouse.up()
    timing = page.evaluate("() => { const t = window.__vaeLiveDecoder; return {frames: t.frames, median_ms: t.medianMs,"
                           " p95_ms: t.p95Ms, frame_interval_ms: t.frameIntervalMs, max_ms: Math.max(...t.times)}; }")
    wait_idle(page)
    return timing


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
        try:
            explore_page, bare_page = new_page(browser, app.url), new_page(browser, bare.url)
            targets = {"explore": explore_target(explore_page), "bare": bare_target(bare_page)}
            result["latency_idle_ms"] = interleaved(targets, n_changes)
            trainer = new_page(browser, app.url)
            start_training(trainer, epochs=10_000)
            result["latency_training_ms"] = interleaved(targets, n_changes)
            result["training_progress"] = _progress(trainer)
            stop_training(trainer)
            trainer.context.close()
            result["live_decoder_digits"] = live_decoder_timing(explore_page)
            result |= _train_on_shapes(browser, app)
            result["server_peak_rss_mb"] = app.peak_rss_mb()
        finally:
            app.stop()
            bare.stop()
        browser.close()
    result["shapes_run"] = str(next(p for p in sorted(runs.iterdir()) if p.name.startswith("shapes")))
    return result


def _cold_starts(browser, work: Path, repeats: int) -> dict[str, list[float]]:
    """Alternating cold starts of the app (empty runs folder: the bundled model) and of the bare torch page."""
    times: dict[str, list[float]] = {"app": [], "bare_torch": []}
    for i in range(repeats):
        env = {"VAE_RUNS_DIR": str(work / f"cold-runs-{i}")}
        times["app"].append(cold_start_s(browser, "app.py", work / "cold-app.log", env, ".vld-root[data-state=ready]"))
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
    page.locator('.vld-root[data-state="ready"]').wait_for(timeout=120_000)
    timing = live_decoder_timing(page)
    page.context.close()
    return {"shapes_train_s": train_s, "peak_rss_after_training_mb": rss_after_training,
            "live_decoder_shapes": timing}


def main() -> dict:
    result = measure()
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
