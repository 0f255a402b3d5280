"""Load, bounded and on loopback only: 8 browser sessions explore (server-decoded slider changes, round robin) while
2 sessions train, for VAE_LOAD_SECONDS (default 60; setting up the ten sessions takes about 3 more minutes on 2
cores). No page shows an exception, no change is lost, both training runs and a run that was there before load
afterwards (the earlier one byte-identical); the server's RSS and the slider's p50/p95 are printed for the README."""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

from bench.bench_browser import explore_target
from tests.e2e.harness import ARTIFACTS, exception_texts, goto, key, new_page, start_server
from tests.e2e.test_train import progress_text, start_training
from tests.helpers import wait_until
from vae_core.config import ModelConfig, RunConfig, TrainConfig
from vae_core.model import VAE
from vae_core.runs import load_run, save_run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXPLORERS, TRAINERS = 8, 2
SECONDS = float(os.environ.get("VAE_LOAD_SECONDS", 60))


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_eight_sessions_explore_while_two_train(browser, tmp_path, _opened):
    runs = tmp_path / "runs"
    config = ModelConfig(latent_dim=2, hidden_sizes=(8,))
    earlier = save_run(runs / "earlier", VAE(config), RunConfig(config, TrainConfig(), {"kind": "digits"}))
    earlier_files = {p.name: p.read_bytes() for p in earlier.iterdir()}
    server = start_server("app.py", ARTIFACTS / "streamlit-load.log",
                          env={"VAE_RUNS_DIR": str(runs), "VAE_THREADS": "1", "VAE_MAX_JOBS": str(TRAINERS)})
    try:
        trainers = [new_page(browser, server.url) for _ in range(TRAINERS)]
        _opened.extend(trainers)
        for page in trainers:
            goto(page, "Train")
            start_training(page, epochs=10_000)
        explorers = [new_page(browser, server.url) for _ in range(EXPLORERS)]
        _opened.extend(explorers)
        targets = []
        for page in explorers:
            goto(page, "Explore")
            targets.append(explore_target(page))
        rss_start = rss_mb(server.process.pid)

        latencies: list[float | None] = []
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            for target in targets:
                latencies.append(target.change())
        rss_end = rss_mb(server.process.pid)

        errors = [text for page in [*trainers, *explorers] for text in exception_texts(page)]
        assert not errors, errors
        assert all(progress_text(page).startswith("running") for page in trainers)
        lost = sum(v is None for v in latencies)
        done = np.array([v for v in latencies if v is not None])
        print(f"\nload: {EXPLORERS} exploring + {TRAINERS} training for {SECONDS:.0f} s: {len(latencies)} slider "
              f"changes, {lost} lost, p50 {np.percentile(done, 50):.0f} ms, p95 {np.percentile(done, 95):.0f} ms; "
              f"server RSS {rss_start:.0f} -> {rss_end:.0f} MB, peak {server.peak_rss_mb():.0f} MB")
        assert lost == 0

        for page in trainers:
            page.locator(f"{key('train_stop')} button").click()
            wait_until(lambda: progress_text(page).startswith("stopped"), "a trainer to stop", timeout=120)
    finally:
        server.stop()
    trained = [p for p in runs.iterdir() if not p.name.startswith(".") and p.name != "earlier"]
    assert len(trained) == TRAINERS and all(load_run(p).history["steps"] for p in trained)
    assert {p.name: p.read_bytes() for p in earlier.iterdir()} == earlier_files
