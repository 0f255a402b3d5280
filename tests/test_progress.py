"""The ETA a job shows: from the rate once it has settled ("estimating…" before), within 15% of the time a simulated
job really takes (slow first steps, an epoch's validation pause, a stall from another process on the cores), and none
once a job has been stopped."""
from __future__ import annotations

import pytest

from ui.training_ui import eta_text
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_digits
from vae_core.jobs import TrainingJob
from vae_core.jobs import progress as progress_module
from vae_core.jobs.progress import SETTLE_S, WARMUP_STEPS, Progress, Rate
from harness.wait import wait_until

BATCH, STEPS_PER_EPOCH, EPOCHS = 64, 40, 100
STALL_STEP, STALL_S = 2 * STEPS_PER_EPOCH + 10, 4.0


def step_seconds() -> list[float]:
    """How long each step of the simulated job takes: 5 slow first steps (one-off costs), then 0.05 s a step, a 0.5 s
    validation at each epoch's end (counted in the next step), and a 4 s stall in epoch 3 (another process): 254 s."""
    seconds = []
    for step in range(STEPS_PER_EPOCH * EPOCHS):
        s = 1.5 if step < WARMUP_STEPS else 0.05
        s += 0.5 if step and step % STEPS_PER_EPOCH == 0 else 0.0
        s += STALL_S if step == STALL_STEP else 0.0
        seconds.append(s)
    return seconds


def test_the_eta_waits_for_the_rate_to_settle_then_stays_within_15_percent_of_the_truth(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: clock[0])
    rate, seconds = Rate(), step_seconds()
    total = len(seconds)
    errors, first_eta_at = [], None
    for step, s in enumerate(seconds, 1):
        clock[0] += s
        rate.add(BATCH)
        left = sum(seconds[step:])  # the true time to the end
        if rate.steady is None:
            assert first_eta_at is None  # once settled, it stays
            continue
        first_eta_at = first_eta_at or clock[0]
        eta = (total - step) * BATCH / rate.steady  # what core._progress_at shows
        since_stall = sum(seconds[STALL_STEP:step]) if step > STALL_STEP else -1.0
        # the last seconds: any error is a second or two; a stall cannot be foreseen, and is forgotten as its share
        # of the time measured shrinks
        if left > 5 and not 0 <= since_stall < 30:
            errors.append(abs(eta - left) / left)

    warmed_up_at = 100.0 + sum(seconds[:WARMUP_STEPS])
    assert SETTLE_S <= first_eta_at - warmed_up_at < SETTLE_S + 0.6  # "estimating…" until 3 s after the warm-up
    assert max(errors) < 0.15, max(errors)


def test_a_restart_after_a_pause_estimates_afresh(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(progress_module.time, "perf_counter", lambda: clock[0])
    rate = Rate()
    for _ in range(200):
        clock[0] += 0.05
        rate.add(BATCH)
    assert rate.steady == pytest.approx(BATCH / 0.05)
    rate.restart()
    assert rate.steady is None


def progress(state: str, eta: float | None) -> Progress:
    return Progress(state=state, epoch=1, epochs=3, step=10, total_steps=30, samples_per_s=100.0, eta_s=eta)


def test_the_page_says_estimating_then_the_eta_and_nothing_once_stopped():
    assert eta_text(progress("running", None)) == " · ETA estimating…"
    assert eta_text(progress("running", 312.0)) == " · ETA 05:12"
    assert eta_text(progress("stopped", None)) == eta_text(progress("paused", None)) == ""


def test_a_stopped_job_has_no_eta():
    job = TrainingJob(load_digits(), ModelConfig(latent_dim=2, hidden_sizes=(16,)),
                      TrainConfig(epochs=10_000, batch_size=32))
    job.start()
    try:
        wait_until(lambda: job.progress().eta_s is not None, "a settled ETA", timeout=120)
    finally:
        job.stop()
        job.join(timeout=30)
    assert job.progress().state == "stopped" and job.progress().eta_s is None
