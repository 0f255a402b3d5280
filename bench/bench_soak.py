"""Soak: the app on loopback with sessions exploring (server-decoded slider changes, round robin) while others train
(jobs of JOB_EPOCHS epochs, started again as each finishes), for a while; the server's RSS sampled along the way (is
memory flat?), the slider's latency (p50, p95) and the changes left unanswered within 30 s ("lost": none expected).

    python -m bench.bench_soak --minutes 10         # prints the figures as JSON

tests/e2e/test_load.py runs the same load (run_load) for a minute and asserts on it."""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.bench_browser import explore_target
from harness.browser import browser_problem, goto, key, launch_chromium, new_page, start_server
from harness.train_page import progress_text, start_training
from harness.wait import wait_until

JOB_EPOCHS = 60  # digits: tens of seconds per job on one thread; a job's history stays small


def rss_mb(pid: int) -> float:
    """A process's resident memory now (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Load:
    latencies: list[float | None] = field(default_factory=list)  # ms per slider change; None: lost (30 s)
    rss: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MB)
    trainers: list = field(default_factory=list)
    explorers: list = field(default_factory=list)
    jobs: int = 0  # training jobs started

    def summary(self) -> dict:
        done = np.array([v for v in self.latencies if v is not None] or [np.nan])
        t, mb = np.array(self.rss).T
        slope = float(np.polyfit(t / 60, mb, 1)[0]) if len(t) > 2 else float("nan")
        return {"jobs": self.jobs, "changes": len(self.latencies), "lost": sum(v is None for v in self.latencies),
                "p50_ms": float(np.percentile(done, 50)), "p95_ms": float(np.percentile(done, 95)),
                "rss_start_mb": float(mb[0]), "rss_end_mb": float(mb[-1]), "rss_max_mb": float(mb.max()),
                "rss_slope_mb_per_min": slope, "rss_samples": [[round(a, 1), round(b, 1)] for a, b in self.rss]}


def run_load(browser, server, explorers: int, trainers: int, seconds: float, sample_s: float = 15.0,
             opened: list | None = None) -> Load:
    """Open `trainers` sessions that start long jobs on digits and `explorers` sessions on Explore (server
    decoding), then change sliders round robin for `seconds`, sampling the server's RSS every sample_s. Every page
    opened is also appended to `opened` (for the caller's checks and cleanup)."""
    load, opened = Load(), opened if opened is not None else []
    for _ in range(trainers):
        page = new_page(browser, server.url)
        load.trainers.append(page)
        opened.append(page)
        goto(page, "Train")
        start_training(page, epochs=JOB_EPOCHS)
        load.jobs += 1
    targets = []
    for _ in range(explorers):
        page = new_page(browser, server.url)
        load.explorers.append(page)
        opened.append(page)
        goto(page, "Explore")
        targets.append(explore_target(page))
    start = time.monotonic()
    load.rss.append((0.0, rss_mb(server.process.pid)))
    while time.monotonic() - start < seconds:
        for target in targets:
            load.latencies.append(target.change())
            for page in load.trainers:
                if progress_text(page).startswith("finished"):  # the next job (a new run)
                    page.locator(f"{key('train_start')} button").click()
                    wait_until(lambda: progress_text(page).startswith("running"), "the next job", timeout=60)
                    load.jobs += 1
            now = time.monotonic() - start
            if now - load.rss[-1][0] >= sample_s:
                load.rss.append((now, rss_mb(server.process.pid)))
    load.rss.append((time.monotonic() - start, rss_mb(server.process.pid)))
    return load


def stop_trainers(load: Load) -> None:
    for page in load.trainers:
        # force: a job that has just finished disabled the button, and a click on a disabled button does nothing
        page.locator(f"{key('train_stop')} button").click(force=True)
        wait_until(lambda: progress_text(page).startswith(("stopped", "finished")), "a trainer to end", timeout=120)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.bench_soak", description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--explorers", type=int, default=8)
    p.add_argument("--trainers", type=int, default=2)
    args = p.parse_args(argv)
    if browser_problem():
        raise SystemExit(browser_problem())
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="vae-soak-"))
    server = start_server("app.py", work / "app.log", env={"VAE_RUNS_DIR": str(work / "runs"), "VAE_THREADS": "1",
                                                            "VAE_MAX_JOBS": str(args.trainers)})
    try:
        with sync_playwright() as playwright:
            browser = launch_chromium(playwright)
            load = run_load(browser, server, args.explorers, args.trainers, args.minutes * 60, sample_s=30.0)
            result = {"minutes": args.minutes, "explorers": args.explorers, "trainers": args.trainers,
                      **load.summary()}
            print(json.dumps(result, indent=2), flush=True)
            stop_trainers(load)
            browser.close()
    finally:
        server.stop()
    return result


if __name__ == "__main__":
    main()
