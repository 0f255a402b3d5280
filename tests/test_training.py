"""The background TrainingJob: steering from another thread, history, reproducibility, learning, failure, resume."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from dataclasses import replace

import numpy as np
import pytest
import torch

from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import Dataset, load_array
from vae_core.jobs import TrainingJob, core, resolve_device
from vae_core.metrics import evaluate
from vae_core.runs import load_run
from vae_core.jobs import TrainingJob, resolve_device
from harness.wait import wait_until

ROOT = Path(__file__).resolve().parents[1]

SMALL = ModelConfig(input_shape=(1, 8, 8), latent_dim=4, hidden_sizes=(32,))
QUICK = TrainConfig(epochs=2, batch_size=64, lr=3e-3, seed=0, lr_schedule="constant", lr_warmup_steps=0)
LONG = replace(QUICK, epochs=10_000, batch_size=16, lr=1e-3)  # never finishes by itself: tests stop it




def settled_step(job: TrainingJob, window: float = 0.3, timeout: float = 30.0) -> int:
    """The step once two reads `window` seconds apart agree.

    "Not advancing" can only be observed over some time: a pause lets the current step (or epoch-end evaluation)
    finish first, and at this model size a job that ignored the pause would take dozens of steps per window."""
    deadline, last = time.monotonic() + timeout, job.progress().step
    while True:
        threading.Event().wait(window)
        now = job.progress().step
        if now == last:
            return now
        if time.monotonic() > deadline:
            pytest.fail("the paused job kept stepping")
        last = now


def run_job(dataset, model_config=SMALL, train_config=QUICK, **kwargs) -> TrainingJob:
    job = TrainingJob(dataset, model_config, train_config, threads=kwargs.pop("threads", 1), **kwargs).start()
    assert job.join(timeout=120), "training did not end"
    return job


def numbers(history: dict) -> dict:
    """The history without wall-clock fields (throughput, timestamps)."""
    drop = {"samples_per_s", "time"}
    return {kind: [{k: v for k, v in row.items() if k not in drop} for row in rows] for kind, rows in history.items()}


# ---------------------------------------------------------------- steering a running job

def test_pause_resume_and_stop_a_running_job(digits):
    job = TrainingJob(digits, SMALL, LONG, threads=1).start()
    wait_until(lambda: job.progress().step >= 5, "the first steps")
    job.pause()
    assert job.state == "paused"
    paused_at = settled_step(job)
    threading.Event().wait(0.5)  # a second, longer window: still no progress while paused
    assert job.progress().step == paused_at and job.state == "paused"
    job.resume()
    assert job.state == "running"
    wait_until(lambda: job.progress().step > paused_at + 3, "steps after resume")
    job.stop()
    assert job.join(timeout=30)
    progress = job.progress()
    assert progress.state == "stopped" and progress.error is None
    assert progress.step < progress.total_steps
    assert job.history()["steps"][-1]["step"] == progress.step  # every step taken is in the history


def test_stop_while_paused_ends_the_job(digits):
    job = TrainingJob(digits, SMALL, LONG, threads=1).start()
    wait_until(lambda: job.progress().step >= 1, "the first step")
    job.pause()
    job.stop()
    assert job.join(timeout=30) and job.state == "stopped"
    with pytest.raises(RuntimeError):
        job.start()  # a job runs once


def test_set_lr_and_set_beta_mid_run_show_in_the_history(digits):
    config = replace(LONG, lr=1e-3, beta=1.0)
    job = TrainingJob(digits, SMALL, config, threads=1).start()
    wait_until(lambda: job.progress().step >= 3, "the first steps")
    job.set_lr(2.5e-4)
    job.set_beta(0.5)
    wait_until(lambda: any(r["lr"] == 2.5e-4 for r in job.snapshot().steps), "a row with the new lr")
    job.stop()
    job.join(timeout=30)
    rows = job.history()["steps"]
    first = next(i for i, r in enumerate(rows) if r["lr"] == 2.5e-4)
    assert first >= 3
    assert all(r["lr"] == 1e-3 and r["beta"] == 1.0 for r in rows[:first])
    assert all(r["lr"] == 2.5e-4 and r["beta"] == 0.5 for r in rows[first:])
    assert all(r["beta_kl"] == pytest.approx(r["beta"] * r["kl"]) for r in rows)
    assert job.train_config.lr == 2.5e-4 and job.train_config.beta == 0.5  # what a save records
    assert config.lr == 1e-3 and config.beta == 1.0  # the caller's config is left alone
    with pytest.raises(ValueError):
        job.set_lr(0)
    with pytest.raises(ValueError):
        job.set_beta(-1)


def test_run_trains_in_the_calling_thread_like_start(digits):
    job = TrainingJob(digits, SMALL, QUICK, threads=1).run()
    assert job.state == "finished" and job.join(timeout=0)
    assert numbers(job.history()) == numbers(run_job(digits).history())
    with pytest.raises(RuntimeError):
        job.run()


def test_snapshot_since_step_returns_only_newer_rows(digits):
    job = run_job(digits)
    full = job.snapshot()
    assert [r["step"] for r in full.steps] == list(range(1, full.progress.step + 1))
    tail = job.snapshot(since_step=10)
    assert [r["step"] for r in tail.steps] == list(range(11, full.progress.step + 1))
    assert tail.epochs == full.epochs and full.model_version >= QUICK.epochs
    assert full.progress.fraction == 1.0 and full.progress.state == "finished"


def test_history_rows_hold_the_documented_fields(digits):
    job = run_job(digits, train_config=replace(QUICK, log_every=3))
    steps, epochs = job.history()["steps"], job.history()["epochs"]
    assert [r["step"] for r in steps] == list(range(3, job.progress().step + 1, 3))
    row = steps[-1]
    assert {"step", "epoch", "total", "recon", "kl", "beta_kl", "beta", "lr", "samples_per_s", "kl_per_dim"} <= set(row)
    assert len(row["kl_per_dim"]) == SMALL.latent_dim and row["kl"] == pytest.approx(sum(row["kl_per_dim"]), rel=1e-5)
    assert row["total"] == pytest.approx(row["recon"] + row["beta"] * row["kl"], rel=1e-5)
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert {"val_neg_elbo", "val_recon", "val_kl", "active_units", "val_kl_per_dim"} <= set(epochs[-1])
    assert epochs[-1]["val_neg_elbo"] == pytest.approx(epochs[-1]["val_recon"] + epochs[-1]["val_kl"])


def test_a_long_history_is_thinned_evenly_to_stay_loadable(digits, tmp_path, monkeypatch):
    monkeypatch.setattr(core, "HISTORY_VALUES", 100 * (12 + SMALL.latent_dim))  # room for 100 rows
    job = run_job(digits, train_config=replace(QUICK, batch_size=8), run_dir=tmp_path / "run")  # 406 steps
    steps = [r["step"] for r in job.history()["steps"]]
    assert 50 <= len(steps) <= 100
    gaps = set(np.diff(steps).tolist())
    assert len(gaps) == 1 and steps[0] == gaps.pop()  # evenly spaced from the start
    assert load_run(tmp_path / "run").history["steps"] == job.history()["steps"]


def test_a_cosine_schedule_with_warm_up_sets_every_steps_learning_rate(digits, tmp_path):
    from vae_core.objective import lr_factor

    config = replace(QUICK, lr=4e-3, lr_schedule="cosine", lr_warmup_steps=5)
    job = run_job(digits, train_config=config, run_dir=tmp_path / "run")
    rows, total = job.history()["steps"], job.progress().total_steps
    assert [r["lr"] for r in rows] == pytest.approx([4e-3 * lr_factor(r["step"] - 1, total, "cosine", 5) for r in rows])
    assert rows[0]["lr"] == pytest.approx(4e-3 / 5) and max(r["lr"] for r in rows) <= 4e-3 and rows[-1]["lr"] < 1e-5
    saved = load_run(tmp_path / "run").config.train
    assert (saved.lr_schedule, saved.lr_warmup_steps, saved.lr) == ("cosine", 5, 4e-3)


def test_a_run_saved_before_schedules_existed_resumes_at_a_constant_rate(digits, tmp_path):
    import json

    run_job(digits, train_config=replace(QUICK, lr_schedule="constant"), run_dir=tmp_path / "run")
    path = tmp_path / "run" / "config.json"
    old = json.loads(path.read_text())
    del old["train"]["lr_schedule"], old["train"]["lr_warmup_steps"]
    path.write_text(json.dumps(old))
    assert load_run(tmp_path / "run").config.train.lr_schedule == "constant"


def test_val_fraction_zero_trains_on_every_image_without_validation_rows(digits, tmp_path):
    every = replace(QUICK, val_fraction=0.0, output_bias="torch")  # learning measured from torch's grey start
    job = run_job(digits, train_config=every, run_dir=tmp_path / "run")
    assert job.state == "finished", job.error
    assert len(job.train_idx) == digits.n and len(job.val_idx) == 0
    assert job.progress().step == 2 * -(-digits.n // QUICK.batch_size)  # every image, every epoch
    epochs = job.history()["epochs"]
    assert [(e["epoch"], e["val_images"]) for e in epochs] == [(1, 0), (2, 0)]  # the history says: no validation
    assert not any(key.startswith("val_") and key != "val_images" or key == "active_units" for e in epochs for key in e)
    run = load_run(tmp_path / "run")
    assert run.metrics["val_images"] == 0 and run.metrics["val_neg_elbo"] is None
    assert run.config.train.val_fraction == 0.0 and run.state["finished"] is True
    x = digits.images[:256]
    assert -evaluate(run.model, Dataset(x, name="x")).elbo < 0.8 * -evaluate(  # it learned
        TrainingJob(digits, SMALL, every, threads=1).model_snapshot(), Dataset(x, name="x")).elbo


# ---------------------------------------------------------------- numbers

def test_same_seed_same_history_other_seed_differs(digits):
    a, b = run_job(digits), run_job(digits)
    c = run_job(digits, train_config=replace(QUICK, seed=1))
    assert numbers(a.history()) == numbers(b.history())
    assert numbers(a.history())["steps"] != numbers(c.history())["steps"]
    assert a.history()["epochs"][-1]["val_neg_elbo"] != c.history()["epochs"][-1]["val_neg_elbo"]


def test_short_training_on_digits_lowers_validation_neg_elbo(digits):
    """Measured on 2 cores, from torch's initialisation: untrained ~45 nats, epoch 1 ~28.8, epoch 10 ~25.5 (the
    grey-pixel BCE floor is high). From the mean image (the default) the untrained model is already at ~27.5:
    tests/test_output_bias.py."""
    config = ModelConfig(input_shape=digits.shape, latent_dim=8, hidden_sizes=(128,))
    job = TrainingJob(digits, config, replace(QUICK, epochs=10, output_bias="torch"), threads=1)
    untrained = -evaluate(job.model_snapshot(), digits.subset(job.val_idx)).elbo
    job.start()
    assert job.join(timeout=120) and job.state == "finished", job.error
    curve = [e["val_neg_elbo"] for e in job.history()["epochs"]]
    assert curve[-1] < 0.7 * untrained, (untrained, curve)
    assert curve[-1] < 0.93 * curve[0], curve  # still improving clearly after the first epoch
    assert curve[-1] == min(curve)


def test_divergence_fails_clearly_and_keeps_finite_weights(digits, tmp_path):
    job = run_job(digits, train_config=replace(QUICK, lr=1e3), run_dir=tmp_path / "run")
    progress = job.progress()
    assert progress.state == "failed"
    assert "diverged" in progress.error and "learning rate" in progress.error
    assert all(torch.isfinite(p).all() for p in job.model_snapshot().parameters())
    saved = load_run(tmp_path / "run")  # the run on disk is loadable (load_run refuses non-finite weights)
    assert all(torch.isfinite(p).all() for p in saved.model.parameters())
    assert saved.state["finished"] is False


def test_resume_continues_steps_and_history_exactly_like_an_uninterrupted_run(digits, tmp_path):
    whole = run_job(digits, train_config=replace(QUICK, epochs=4))
    first = run_job(digits, train_config=replace(QUICK, epochs=2), run_dir=tmp_path / "run")
    run = load_run(tmp_path / "run", with_optimizer=True)
    assert run.state["step"] == first.progress().step and run.optimizer_tensors is not None
    second = run_job(digits, train_config=replace(QUICK, epochs=4), resume=run, run_dir=tmp_path / "run")
    assert second.state == "finished"
    steps = [r["step"] for r in second.history()["steps"]]
    assert steps == list(range(1, whole.progress().step + 1))  # the count continues, no gap, no repeat
    ours, reference = second.history()["epochs"], whole.history()["epochs"]
    assert [e["epoch"] for e in ours] == [1, 2, 3, 4]
    np.testing.assert_allclose([e["val_neg_elbo"] for e in ours], [e["val_neg_elbo"] for e in reference], rtol=1e-5)
    state = load_run(tmp_path / "run").state
    assert (state["step"], state["epoch"], state["finished"]) == (steps[-1], 4, True)


def test_autosaved_run_records_metrics_and_device(digits, tmp_path):
    job = run_job(digits, run_dir=tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert run.metrics["device"] == "cpu" and run.metrics["epochs_done"] == 2 and run.metrics["world_size"] == 1
    assert run.metrics["val_neg_elbo"] == job.history()["epochs"][-1]["val_neg_elbo"]
    assert run.history == job.history()
    z = torch.randn(5, SMALL.latent_dim)
    assert torch.equal(run.model.decode(z), job.model_snapshot().decode(z))


def test_memory_mapped_npy_trains_like_the_same_data_in_memory(digits, tmp_path):
    path = tmp_path / "digits.npy"
    np.save(path, digits.images[:600, 0])  # (N, H, W) float32 in [0, 1]
    mapped = load_array(path, mmap=True)
    assert isinstance(mapped.images, np.memmap)
    in_memory = Dataset(np.array(mapped.images), name="digits.npy")
    a, b = run_job(mapped), run_job(in_memory)
    assert a.state == b.state == "finished"
    assert numbers(a.history()) == numbers(b.history())


def test_default_threads_follow_the_environment(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("VAE_THREADS", "3")
    assert core.default_threads() == 3
    monkeypatch.delenv("VAE_THREADS")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "64")  # torchrun on this machine: cores are shared by the local ranks
    assert core.default_threads() == 1


# ---------------------------------------------------------------- devices

def test_devices_resolve_or_fail_clearly(digits):
    assert resolve_device("cpu") == "cpu"
    job = TrainingJob(digits, SMALL, replace(QUICK, device="auto"), threads=1)
    assert job.train_config.device == resolve_device("auto") == str(job.device)  # "auto" is saved as what it picked
    assert next(job.model.parameters()).device == job.device
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="not available"):
            TrainingJob(digits, SMALL, replace(QUICK, device="cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_cuda_keeps_model_data_and_noise_there(digits, tmp_path):
    job = run_job(digits, train_config=replace(QUICK, device="cuda"), run_dir=tmp_path / "run")
    assert job.state == "finished", job.error
    assert next(job.model.parameters()).is_cuda and not next(job.model_snapshot().parameters()).is_cuda
    assert load_run(tmp_path / "run").metrics["device"].startswith("cuda")


def test_a_job_stopped_before_its_first_step_leaves_no_run(digits, tmp_path):
    """Start then Stop at once: no folder with an untrained model and an empty history among the runs."""
    job = TrainingJob(digits, SMALL, QUICK, run_dir=tmp_path / "run", threads=1)
    job.stop()
    job.run()
    assert job.state == "stopped" and job.progress().step == 0
    assert not (tmp_path / "run").exists()
    trained = TrainingJob(digits, SMALL, replace(QUICK, epochs=1), run_dir=tmp_path / "trained", threads=1)
    trained.run()
    assert load_run(tmp_path / "trained").history["steps"]


PAGE_FAULTS_OF_A_JOB = """
import resource, sys
import numpy as np, torch
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import Dataset
from vae_core.jobs import TrainingJob, keep_freed_heap
import vae_core.epoch_maps
if sys.argv[1] == "kept":
    assert keep_freed_heap()
vae_core.epoch_maps.MAP_POINTS = 0  # the latent map's frames are data the job keeps (~52 pages an epoch here), not
torch.set_num_threads(1)            # pages the steps fault in: without them, what is left is the steps' own faults
images = np.random.default_rng(0).random((3000, 1, 28, 28), dtype=np.float32)
model = ModelConfig(input_shape=(1, 28, 28), latent_dim=20, hidden_sizes=(400,))
data = Dataset(images, name="noise")
run = lambda e: TrainingJob(data, model, TrainConfig(epochs=e, batch_size=128), threads=1).run()
run(1)  # the first job grows the heap
faults = []
for epochs in (2, 6):  # the same set-up, four more epochs of steps: what the steps themselves fault in
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    run(epochs)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_a_training_process_keeps_its_freed_heap_instead_of_faulting_pages_in_at_every_step():
    # the CLI and the app's workers call keep_freed_heap(): without it glibc hands each step's activations back to
    # the OS and faults them in again (a 784-400-20 job was 2.6% slower in a worker process)
    # Measured: kept, a 2- and a 6-epoch job fault in the same ~3.5k pages (their set-up; the steps reuse the heap);
    # glibc's default, 4.9k and 8.6-9.1k (~900 pages more every epoch). Comparing one job's count under the two
    # modes was flaky: glibc's adaptive mmap threshold sometimes spared the default mode's steps (3.7k against 3.9k
    # once), so the test reads what the kept heap promises: more steps, no more faults.
    out = subprocess.run([sys.executable, "-c", PAGE_FAULTS_OF_A_JOB, "kept"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    two_epochs, six_epochs = map(int, out.stdout.split())
    assert six_epochs < 1.2 * two_epochs + 200, (two_epochs, six_epochs)


def test_samples_per_second_is_measured_over_seconds_not_per_step_and_not_across_a_pause(monkeypatch):
    from vae_core.jobs import progress

    clock = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    rate = progress.Rate()

    def steps(n: int, images: int = 100, each_s: float = 0.01) -> float:
        for _ in range(n):
            clock[0] += each_s
            shown = rate.add(images)
        return shown

    assert steps(100) == pytest.approx(10_000)  # 100 images every 10 ms
    clock[0] += 0.2  # one slow step (an epoch end, another process on the core)...
    right_after = steps(1)
    assert 8_000 < right_after < 10_000  # ...moves the figure a little, not to 100 / 0.21 s = 476
    assert steps(300) == pytest.approx(10_000, rel=0.01)  # and leaves the window after RATE_WINDOW_S
    clock[0] += 60.0  # paused for a minute
    rate.restart()
    assert steps(10, each_s=0.02) == pytest.approx(5_000)  # after the pause: its own pace, the minute not counted
