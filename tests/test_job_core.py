"""Both job kinds — TrainingJob (a thread of this process) and ProcessJob (a worker process) — share one core
(vae_core/jobs/core.py): the same setup, the same refusals of a bad lr or β, the same state transitions."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from vae_core.config import ModelConfig, TrainConfig
from vae_core.jobs import ProcessJob, TrainingJob
from harness.wait import wait_until

SMALL = ModelConfig(input_shape=(1, 8, 8), latent_dim=4, hidden_sizes=(32,))
QUICK = TrainConfig(epochs=2, batch_size=64, lr=3e-3, seed=0, lr_schedule="constant", lr_warmup_steps=0)
LONG = replace(QUICK, epochs=10_000, batch_size=16, lr=1e-3)  # never finishes by itself: the tests stop it


@pytest.fixture(params=[TrainingJob, ProcessJob], ids=["thread", "process"])
def kind(request) -> type:
    return request.param


@pytest.mark.parametrize("change, value, message", [
    ("set_lr", 0.0, "lr must be > 0"), ("set_lr", -1e-3, "lr must be > 0"), ("set_lr", float("nan"), "lr must be > 0"),
    ("set_beta", -0.5, "beta must be >= 0"), ("set_beta", float("nan"), "beta must be >= 0"),
])
def test_a_bad_lr_or_beta_is_refused_with_the_configs_own_message(kind, digits, change, value, message):
    job = kind(digits, SMALL, QUICK, threads=1)
    with pytest.raises(ValueError, match=message):
        getattr(job, change)(value)
    with pytest.raises(ValueError, match=message):  # the rule is TrainConfig's: a form gets the same answer
        replace(QUICK, **{change.removeprefix("set_"): value})
    assert (job.train_config.lr, job.train_config.beta) == (QUICK.lr, QUICK.beta)


def test_both_kinds_set_up_the_same_split_first_weights_and_device(digits):
    thread = TrainingJob(digits, SMALL, replace(QUICK, device="auto"), threads=1)
    process = ProcessJob(digits, SMALL, replace(QUICK, device="auto"), threads=1)
    assert np.array_equal(thread.train_idx, process.train_idx) and np.array_equal(thread.val_idx, process.val_idx)
    assert thread.train_config == process.train_config and process.train_config.device == str(process.device)
    weights = process.model_snapshot().state_dict()
    for key, value in thread.model_snapshot().state_dict().items():
        assert torch.equal(value, weights[key]), key
    assert thread.progress() == process.progress()  # created, step 0 of the same total, no rate yet
    assert thread.progress().total_steps == 2 * -(-len(thread.train_idx) // 64)


def test_pause_resume_and_stop_move_the_state_alike(kind, digits):
    job = kind(digits, SMALL, LONG, threads=1)
    assert job.pause() is False and job.state == "created"  # nothing to pause yet
    job.resume()
    assert job.state == "created" and not job.is_active
    job.start()
    try:
        with pytest.raises(RuntimeError, match="job already running"):
            job.start()
        wait_until(lambda: job.progress().step >= 3, "the first steps")
        assert job.pause() is True and job.state == "paused" and job.is_active
        assert job.pause() is False and job.state == "paused"  # pausing twice changes nothing
        job.resume()
        assert job.state == "running"
        job.set_lr(5e-4)  # steering a running job: the next steps take it
        wait_until(lambda: any(r["lr"] == 5e-4 for r in job.history()["steps"]), "a step at the new lr")
    finally:
        job.stop()
    assert job.state in ("stopping", "stopped") and job.join(timeout=60)
    assert job.state == "stopped" and not job.is_active and job.error is None
    job.pause()
    job.resume()
    job.stop()
    assert job.state == "stopped"  # an ended job stays ended
    with pytest.raises(RuntimeError, match="job already stopped"):
        job.start()
