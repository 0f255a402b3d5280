"""Drive the app in a real browser: start a Streamlit server on a free loopback port, launch Debian's Chromium
through Playwright, wait for Streamlit to finish running, navigate pages, read plotly figures from the page.

Shared by tests/e2e (the end-to-end tests) and bench/ (the browser benchmarks), so both measure the same thing;
it lives outside tests/ so that bench never imports the test suite."""
from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from harness.wait import wait_until

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"  # server log, page screenshots after use, failure screenshots (gitignored)
CHROMIUM = Path(os.environ.get("VAE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
VIEWPORT = {"width": 1400, "height": 1000}
APP = '[data-testid="stApp"]'
RUNNING_ICONS = '[data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"]'


def browser_problem() -> str | None:
    """Why the browser tests cannot run here (no Chromium, no Playwright), or None when they can."""
    if not CHROMIUM.exists():
        return f"Chromium not found at {CHROMIUM} (install it: apt-get install -y chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is missing; pip install -r requirements-dev.txt"
    return None


def free_port() -> int:
    """A TCP port nobody listens on right now (bound once on loopback and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A Streamlit server this process started (its own process group), with its log file."""
    process: subprocess.Popen
    port: int
    log_path: Path
    started_at: float = field(default_factory=time.monotonic)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def peak_rss_mb(self) -> float | None:
        """The server process's peak resident memory (VmHWM), in MB."""
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the server's process group, then SIGKILL it if it is still there after timeout seconds."""
        if self.process.poll() is not None:
            return
        pgid = os.getpgid(self.process.pid)
        os.killpg(pgid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.process.wait(5)


def start_server(script: str | Path, log_path: Path, env: dict | None = None, cwd: Path = ROOT,
                 timeout: float = 90.0, address: str | None = "127.0.0.1") -> Server:
    """`streamlit run script` headless on address:<free port> (address None: whatever the app's config says);
    returns once /_stcore/health answers ok on 127.0.0.1."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.headless", "true",
           "--server.port", str(port), "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"]
    cmd += ["--server.address", address] if address else []
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "wb")
    process = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    log.close()
    server = Server(process, port, log_path)
    try:
        wait_healthy(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def wait_healthy(server: Server, timeout: float) -> None:
    """Poll /_stcore/health until it says ok; fail with the server's log when it dies or the deadline passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.process.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + "/_stcore/health", timeout=2) as r:
                if r.status == 200 and r.read().strip() == b"ok":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"streamlit did not answer /_stcore/health within {timeout:.0f}s:\n{server.log_tail()}")


def launch_chromium(playwright, **kwargs):
    """Debian's Chromium, headless (Playwright's own browser download cannot work on these machines)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, **kwargs)


def new_page(browser, url: str, timeout_s: float = 90.0):
    """A fresh browser context (a fresh Streamlit session) on url, once the app has finished its first run."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(url)
    wait_idle(page, timeout_s)
    return page


# --------------------------------------------------------------------------- waiting for Streamlit

_IDLE_JS = """([selector, runningIcons, quietMs]) => {
  const app = document.querySelector(selector);
  const busy = !app || app.getAttribute('data-test-connection-state') !== 'CONNECTED'
    || app.getAttribute('data-test-script-state') === 'running'
    || app.getAttribute('data-test-script-state') === 'rerunRequested'
    || document.querySelector(runningIcons) !== null;
  const now = performance.now();
  if (busy) { window.__e2eIdleSince = null; return false; }
  if (window.__e2eIdleSince == null) { window.__e2eIdleSince = now; return false; }
  return now - window.__e2eIdleSince >= quietMs;
}"""


def wait_idle(page, timeout_s: float = 60.0, quiet_ms: int = 300) -> None:
    """Wait until Streamlit is connected and has not been running for quiet_ms (its script and fragments done)."""
    page.evaluate("window.__e2eIdleSince = null")
    page.wait_for_function(_IDLE_JS, arg=[APP, RUNNING_ICONS, quiet_ms], polling=50, timeout=timeout_s * 1000)


def goto(page, title: str, timeout_s: float = 90.0, idle: bool = True) -> None:
    """Open a page by its sidebar link (same session; a URL change would start a new one) and wait for its title,
    then for Streamlit to go idle (idle=False where a live fragment keeps it busy, e.g. Train while a job runs)."""
    page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    page.locator("h1", has_text=_HEADINGS.get(title, title)).first.wait_for(timeout=timeout_s * 1000)
    if idle:
        wait_idle(page, timeout_s)


_HEADINGS = {"Explore": "Explore the latent space"}


def key(name: str) -> str:
    """The CSS selector of a keyed widget's element container (Streamlit adds the class st-key-<key>)."""
    return f".st-key-{name}"


# --------------------------------------------------------------------------- reading the page

_TRACES_JS = """selector => {
  const gd = document.querySelector(selector + ' .js-plotly-plot');
  if (!gd || !gd._fullData) return null;
  const last = a => (a && a.length ? a[a.length - 1] : null);
  return gd._fullData.map(t => ({name: t.name || '', n: t.x ? t.x.length : 0, x_last: last(t.x),
                                 y: t.y ? Array.from(t.y).slice(-3) : []}));
}"""


def plotly_traces(page, selector: str, timeout_s: float = 30.0) -> list[dict]:
    """The traces of the plotly figure inside selector (name, number of points, last x, last y values), once plotly.js
    (loaded lazily by Streamlit) has drawn it; read afresh each call (fragments replace the graph div)."""
    return page.wait_for_function(_TRACES_JS, arg=selector, polling=100, timeout=timeout_s * 1000).json_value()


def exception_texts(page) -> list[str]:
    """The text of every Streamlit exception box on the page."""
    return page.locator('[data-testid="stException"]').all_inner_texts()


def screenshot(page, path: Path, max_height: int = 4000, idle: bool = True) -> Path:
    """A PNG of the whole page: Streamlit scrolls inside its main container, so the viewport is grown to fit it."""
    height = page.evaluate("""() => Math.max(...['[data-testid="stMain"]', '[data-testid="stAppViewContainer"]',
        '[data-testid="stMainBlockContainer"]'].map(s => document.querySelector(s)).filter(Boolean)
        .map(e => e.scrollHeight), window.innerHeight)""")
    size = page.viewport_size
    path.parent.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": size["width"], "height": min(max_height, int(height) + 40)})
    try:
        if idle:
            wait_idle(page)
        page.screenshot(path=str(path), animations="disabled")
    finally:
        page.set_viewport_size(size)
    return path


# --------------------------------------------------------------------------- the live Explore view

def live(role: str) -> str:
    """The selector of a live-view part (panel, map, pad) once it is ready."""
    return f'.vx-root[data-role="{role}"][data-state="ready"]'


_REVEAL_JS = "selector => { const m = document.querySelector(selector); if (m) m.scrollIntoView({block: 'center'}); }"


def show_views(page) -> None:
    """Scroll Explore down to its views, as a user does: the page draws them (and the nearest images) only then."""
    tabs = page.locator('[data-testid="stTabs"]').first

    def shown() -> bool:
        # scrolled again on each poll: a scroll made while the live parts above the marker were still loading was
        # undone when they grew and pushed the marker back below the screen (the tabs then never came: CI, once).
        # In the page, not by locator: the marker leaves the page once seen, and a locator's scroll then fails.
        if not tabs.is_visible():
            page.evaluate(_REVEAL_JS, key("explore_reveal"))
        return tabs.is_visible()

    wait_until(shown, timeout=60, what="the Explore views drawn once scrolled to")
    wait_idle(page)


def open_pad(page) -> None:
    """Open Explore's drawing pad (1-channel models): its mount brings the model's encoder to the browser (the page
    sends the decoder alone until then), so the page can encode; waits until the pad is ready."""
    page.get_by_text("Draw an image to encode it").click()
    page.locator(live("pad")).wait_for()


def explore_api(page, call: str, *args):
    """Call window.__vaeExplore.<call>(...args) in the page (ui/explore/live/main.js: the test hooks)."""
    return page.evaluate(f"(args) => window.__vaeExplore.{call}(...args)", list(args))


NEXT_FRAME_JS = "() => new Promise(resolve => requestAnimationFrame(() => requestAnimationFrame(() => resolve(true))))"


def next_frame(page) -> None:
    """Wait until the page has drawn two more frames."""
    page.wait_for_function(NEXT_FRAME_JS)


def drag(page, start: tuple[float, float], moves: list[tuple[float, float]], each_frame: bool = True) -> None:
    """Press the mouse at start, move through the points (a frame after each), release."""
    page.mouse.move(*start)
    page.mouse.down()
    for point in moves:
        page.mouse.move(*point)
        if each_frame:
            next_frame(page)
    page.mouse.up()


def click_point(page, row: int) -> int:
    """Hover then click the map's point of dataset row `row`, as a user does; returns the row the map says it hovered."""
    page.locator(live("map")).wait_for()
    page.locator(live("map")).scroll_into_view_if_needed()
    point = explore_api(page, "pointOnScreen", row)
    page.mouse.move(point["x"], point["y"])
    hovered = int(page.locator(live("map")).get_attribute("data-hover-row"))
    page.mouse.click(point["x"], point["y"])
    return hovered


def open_explore(browser, url: str, timeout_s: float = 180.0):
    """A fresh session (its own context) on url, Explore being the default page with the newest run active; returns
    the page and its time to interactive: seconds from opening it until the map is drawn and the live panel decodes."""
    page = browser.new_context(viewport=VIEWPORT, accept_downloads=True).new_page()
    page.set_default_timeout(timeout_s * 1000)
    start = time.monotonic()
    page.goto(url)
    page.locator(live("map")).wait_for()
    page.locator(live("panel")).wait_for()
    return page, time.monotonic() - start
