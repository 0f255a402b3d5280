"""DistributedDataParallel: 2 CPU processes (gloo on loopback, launched by torchrun) train the same model as one
process with the same global batch, and write exactly one run folder."""
from __future__ import annotations

import math
import os
import re
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import load_digits
from vae_core.runs import load_run
from vae_core.jobs import TrainingJob

ROOT = Path(__file__).resolve().parents[1]
MODEL = ModelConfig(input_shape=(1, 8, 8), latent_dim=4, hidden_sizes=(32,))
TRAIN = TrainConfig(epochs=2, batch_size=128, lr=2e-3, seed=0, device="cpu")
N_TRAIN = 1617  # digits' training split at val_fraction 0.1
# Tolerance: the ranks' gradients are summed by an all-reduce in another order than one process sums them, so
# float32 results differ by rounding (~1e-7 per step); over these few dozen steps that stays far below 1e-4.
RTOL = 1e-4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(out: Path, train: TrainConfig, nproc: int = 2) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", "-m", "vae_core.train", "--data", "digits", "--epochs", str(train.epochs),
           "--batch-size", str(train.batch_size), "--lr", str(train.lr), "--seed", str(train.seed),
           "--lr-schedule", train.lr_schedule, "--lr-warmup-steps", str(train.lr_warmup_steps),  # not the recipe's
           "--latent-dim", str(MODEL.latent_dim), "--hidden", "32", "--device", "cpu", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=110)


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("batch", [
    128,  # 12 full global batches + one of 81 rows, split 41 / 40 between the ranks
    1616,  # one full batch + one of a single row: rank 1 has none and joins the all-reduce with weight 0
])
def test_two_gloo_processes_match_one_process_and_write_one_run(tmp_path, batch):
    train = replace(TRAIN, batch_size=batch)
    runs = tmp_path / "runs"
    done = torchrun(runs / "ddp", train)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in runs.iterdir()) == ["ddp"]  # rank 0 alone saved, no staging leftovers
    ddp = load_run(runs / "ddp", with_optimizer=True)  # the same run format the app opens
    assert ddp.metrics["world_size"] == 2 and ddp.metrics["device"] == "cpu"
    # rank 0 alone shows progress, over the global batches: its last bar is the finished job's
    assert done.stdout.count("saved ") == 1, done.stdout
    *_, (step, steps, rate) = re.findall(r"step (\d+)/(\d+) +(\d+) img/s ETA", done.stderr)
    assert int(step) == int(steps) == math.ceil(N_TRAIN / batch) * train.epochs and int(rate) > 0

    single = TrainingJob(load_digits(), MODEL, train, threads=1).start()
    assert single.join(timeout=120) and single.state == "finished", single.error
    ref = single.history()

    assert ddp.state["step"] == single.progress().step == math.ceil(N_TRAIN / batch) * train.epochs
    assert [r["step"] for r in ddp.history["steps"]] == [r["step"] for r in ref["steps"]]
    np.testing.assert_allclose([r["total"] for r in ddp.history["steps"]], [r["total"] for r in ref["steps"]],
                               rtol=RTOL)  # step losses are reduced over the ranks to the global-batch mean
    np.testing.assert_allclose([e["val_neg_elbo"] for e in ddp.history["epochs"]],
                               [e["val_neg_elbo"] for e in ref["epochs"]], rtol=RTOL)
    weights = single.model_snapshot().state_dict()
    for name, tensor in ddp.model.state_dict().items():
        torch.testing.assert_close(tensor, weights[name], rtol=RTOL, atol=1e-5)


@pytest.mark.parametrize("batch", [[7, 3, 9, 4, 1], [7, 3, 9, 4], [5]])
def test_ranks_split_a_global_batch_and_its_noise_exactly(batch):
    """What each rank trains on: together the ranks cover the global batch once, with the noise one process draws."""
    job = TrainingJob(load_digits(), MODEL, TRAIN, threads=1)  # never started: only its sharding is used
    batch = np.array(batch)
    whole = torch.randn((len(batch), MODEL.latent_dim), generator=torch.Generator().manual_seed(1))
    job.world, rows, shares = 2, {}, []
    for job.rank in (0, 1):
        local, eps, share = job._shard(batch, torch.Generator().manual_seed(1))
        assert len(local) == len(eps) >= 1  # every rank runs at least one row
        shares.append(share)
        if share:
            rows.update({int(r): e for r, e in zip(local, eps)})
    assert sorted(rows) == sorted(batch.tolist()) and sum(shares) == pytest.approx(1.0)
    for i, r in enumerate(batch.tolist()):
        assert torch.equal(rows[r], whole[i])
    if len(batch) == 1:  # rank 1 has no row: it still runs one, weighted 0, to join the all-reduce
        assert shares == [1.0, 0.0]


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_a_run_trained_by_torchrun_opens_in_the_app(tmp_path, monkeypatch):
    """The Explore page (the app's default) takes a torchrun run as its active model, and the sidebar names it."""
    from streamlit.testing.v1 import AppTest

    from ui.explore.views import SHOWN as VIEWS_SHOWN

    runs = tmp_path / "runs"
    done = torchrun(runs / "ddp-digits", replace(TRAIN, epochs=1))
    assert done.returncode == 0, done.stderr[-3000:]
    monkeypatch.setenv("VAE_RUNS_DIR", str(runs))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state[VIEWS_SHOWN] = True  # scrolled down to the nearest images
    at.run()  # the newest run becomes active
    assert not at.exception, [e.value for e in at.exception]
    assert any("ddp-digits" in c.value and "4-D latent" in c.value for c in at.sidebar.caption)
    assert any("Nearest" in m.value for m in at.markdown)  # Explore decoded and searched the torchrun model's space
