"""Training faults: divergence, SIGKILL mid-training, failed saves, a crash inside save_run — no run is ever lost."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import math
from pathlib import Path

import pytest

from harness.wait import wait_until
from tests.test_runs import TINY, files_of, make_run, same_weights
from vae_core import train as train_cli
from vae_core.runs import folder as run_folder
from vae_core.config import TrainConfig
from vae_core.jobs import TrainingJob, build_model
from vae_core.metrics import evaluate
from vae_core.runs import MODEL_FILE, list_runs, load_run, recover_runs

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "VAE_THREADS": "1"}


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


# ----------------------------------------------------------------------------- divergence


def test_divergence_stops_the_job_with_a_message_and_keeps_the_last_good_weights(tmp_path, digits):
    job = TrainingJob(digits, TINY, TrainConfig(epochs=500, batch_size=256, seed=0), run_dir=tmp_path / "r",
                      threads=1).start()
    wait_until(lambda: job.progress().epoch >= 2, what="two epochs")
    job.set_lr(1e8)
    assert job.join(timeout=120)
    progress = job.progress()
    assert progress.state == "failed" and progress.epoch >= 2
    assert "diverged" in progress.error and "lower learning rate" in progress.error
    run = load_run(tmp_path / "r")  # load_run itself refuses non-finite weights
    assert same_weights(run.model, job.model_snapshot())  # the weights published at the last good epoch
    assert run.state["epoch"] == progress.epoch == len(run.history["epochs"]) and run.state["finished"] is False
    assert not same_weights(run.model, build_model(TINY, 0))  # trained weights, not the initial ones
    assert math.isfinite(evaluate(run.model, digits.subset(job.val_idx), seed=0).elbo)


def test_divergence_on_the_first_steps_still_leaves_a_loadable_run(tmp_path, digits):
    job = TrainingJob(digits, TINY, TrainConfig(epochs=5, batch_size=256, lr=1e8), run_dir=tmp_path / "r",
                      threads=1).start()
    assert job.join(timeout=120)
    assert job.progress().state == "failed" and "diverged" in job.progress().error
    run = load_run(tmp_path / "r", with_optimizer=True)
    assert run.state["epoch"] == 0 and run.optimizer_tensors is None  # poisoned Adam moments are never saved


def test_weights_blown_up_by_an_epochs_last_step_are_caught_at_validation_and_never_published(tmp_path, digits):
    # one step per epoch: its loss is read before the update, so only the validation pass sees the huge weights
    config = TrainConfig(epochs=3, batch_size=4096, lr=1e8, seed=0)
    initial = TrainingJob(digits, TINY, config, threads=1).model_snapshot()  # the weights a job starts from
    job = TrainingJob(digits, TINY, config, run_dir=tmp_path / "r", threads=1).start()
    assert job.join(timeout=120)
    progress = job.progress()
    assert progress.state == "failed" and "diverged in epoch 1" in progress.error
    assert "lower learning rate" in progress.error
    run = load_run(tmp_path / "r")
    assert run.state["epoch"] == 0 and same_weights(run.model, initial)  # the initial weights
    assert math.isfinite(evaluate(run.model, digits.subset(job.val_idx), seed=0).elbo)


# ----------------------------------------------------------------------------- SIGKILL


@pytest.mark.slow
def test_a_training_process_killed_with_sigkill_leaves_a_loadable_resumable_run(tmp_path):
    out = tmp_path / "runs" / "killed"
    train = [sys.executable, "-m", "vae_core.train", "--data", "digits", "--out", str(out), "--quiet",
             "--threads", "1", "--hidden", "32", "--latent-dim", "2"]
    proc = subprocess.Popen([*train, "--epochs", "200"], cwd=ROOT, env=ENV, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: proc.poll() is not None or _epochs_on_disk(out) >= 1, timeout=300, what="first autosave")
        assert proc.poll() is None, proc.stderr.read().decode()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    recover_runs(out.parent)
    killed = load_run(out, with_optimizer=True)
    n, steps = killed.state["epoch"], killed.state["step"]
    assert 1 <= n < 200 and killed.state["finished"] is False and killed.optimizer_tensors
    assert len(killed.history["epochs"]) == n and killed.history["steps"][-1]["step"] == steps

    done = subprocess.run([*train, "--resume", str(out), "--epochs", str(n + 1)], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed = load_run(out)
    assert resumed.state["epoch"] == n + 1 and resumed.state["step"] > steps and resumed.state["finished"] is True
    assert resumed.history["steps"][:len(killed.history["steps"])] == killed.history["steps"]
    assert resumed.history["steps"][len(killed.history["steps"])]["step"] == steps + 1
    assert [e["epoch"] for e in resumed.history["epochs"]] == list(range(1, n + 2))


def _epochs_on_disk(run_dir: Path) -> int:
    try:
        return int(json.loads((run_dir / "metrics.json").read_text()).get("epochs_done", 0))
    except (OSError, ValueError):
        return 0


SAVE_LOOP = """
import sys, torch
from tests.test_runs import TINY
from vae_core.config import RunConfig
from vae_core.jobs import build_model
from vae_core.runs import save_run
model, i = build_model(TINY, 0), 0
history = {"steps": [{"step": s, "epoch": 1, "total": 1.0, "kl_per_dim": [0.0] * 2} for s in range(20000)], "epochs": []}
while True:
    i += 1
    with torch.no_grad():
        model.encoder.mu.bias.fill_(i)
    save_run(sys.argv[1], model, RunConfig(model=TINY), history, {"epochs_done": i}, state={"step": i, "epoch": i})
    print(i, flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("swap", ["exchange", "two-renames"])
def test_killing_a_process_in_the_middle_of_saves_never_loses_the_run(tmp_path, swap):
    """SIGKILL at random moments while a process saves the same run in a loop: the run always loads afterwards."""
    out = tmp_path / "r"
    script = SAVE_LOOP if swap == "exchange" else SAVE_LOOP.replace(
        "while True:", "import vae_core.runs.folder as run_folder\nrun_folder._exchange = lambda a, b: False\nwhile True:")
    saved = []
    for kill_after in (0.05, 0.3, 0.11, 0.7, 0.23):
        proc = subprocess.Popen([sys.executable, "-c", script, str(out)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE)
        try:
            first = int(proc.stdout.readline() or 0)
            assert first >= 1
            time.sleep(kill_after)
        finally:
            proc.kill()
            proc.wait(timeout=60)
        recover_runs(tmp_path)
        run = load_run(out)
        saved.append(run.state["epoch"])
        assert run.model.encoder.mu.bias[0].item() == run.state["epoch"] == run.metrics["epochs_done"]
        assert not [n for n in hidden_leftovers(tmp_path) if ".old-" in n]  # staging (.new-) may stay an hour
    assert all(s >= 1 for s in saved)


# ----------------------------------------------------------------------------- failed saves


@pytest.mark.parametrize("fail", ["fsync", "replace", "mkdtemp", "exchange"])
def test_a_failed_save_raises_and_never_corrupts_the_previous_run(tmp_path, monkeypatch, fail):
    path = make_run(tmp_path / "r", seed=0, optimizer=True)
    before = files_of(path)
    target = {"fsync": (run_folder.os, "fsync"), "replace": (run_folder.os, "replace"),
              "mkdtemp": (run_folder.tempfile, "mkdtemp"), "exchange": (run_folder, "_exchange")}[fail]
    monkeypatch.setattr(*target, disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        make_run(tmp_path / "r", seed=1, optimizer=True)
    monkeypatch.undo()
    assert files_of(path) == before and hidden_leftovers(tmp_path) == []
    assert load_run(path, with_optimizer=True).config.train.seed == 0


def test_saving_under_a_file_raises_a_clear_oserror(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(OSError):
        make_run(tmp_path / "a-file" / "r")
    assert (tmp_path / "a-file").read_text() == "not a folder"


def test_a_job_whose_saves_fail_reports_it_and_keeps_the_previous_run(tmp_path, monkeypatch, digits):
    path = make_run(tmp_path / "r", seed=0, optimizer=True)
    before, reference = files_of(path), load_run(path)
    previous = load_run(path, with_optimizer=True)  # the job trains this one's model in place
    monkeypatch.setattr(run_folder.os, "fsync", disk_full)  # the disk is full for the whole job
    job = TrainingJob(digits, TINY, TrainConfig(epochs=3, batch_size=256), run_dir=path, resume=previous,
                      threads=1).start()
    assert job.join(timeout=120)
    monkeypatch.undo()
    progress = job.progress()
    assert progress.state == "finished" and progress.epoch == 3
    assert progress.warnings and all("could not save the run" in w and "No space left" in w
                                      for w in progress.warnings)
    assert files_of(path) == before and hidden_leftovers(tmp_path) == []
    assert same_weights(load_run(path).model, reference.model)


# ----------------------------------------------------------------------------- the command line's exit code

CLI_TINY = ["--data", "digits", "--latent-dim", "3", "--hidden", "32", "--threads", "1", "--quiet"]


def test_a_cli_run_that_could_not_be_saved_exits_nonzero_and_keeps_the_last_complete_save(tmp_path, monkeypatch,
                                                                                         capsys):
    out = tmp_path / "run5"
    assert train_cli.main([*CLI_TINY, "--epochs", "2", "--out", str(out)]) == 0  # a complete save: 2 epochs
    capsys.readouterr()
    before = files_of(out)
    monkeypatch.setattr(run_folder.os, "fsync", disk_full)  # then the disk fills up
    code = train_cli.main([*CLI_TINY, "--epochs", "5", "--resume", str(out), "--out", str(out)])
    monkeypatch.undo()
    captured = capsys.readouterr()
    assert code == 1 and "saved" not in captured.out, captured
    assert captured.err.strip().splitlines()[-1] == (
        f"error: could not save the run to {out}: [Errno 28] No space left on device; {out} keeps its last complete "
        "save (epoch 2, step 14)")
    assert files_of(out) == before and load_run(out).metrics["epochs_done"] == 2


def test_a_cli_run_on_a_full_disk_says_nothing_was_saved(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run5"
    monkeypatch.setattr(run_folder.os, "fsync", disk_full)
    code = train_cli.main([*CLI_TINY, "--epochs", "2", "--out", str(out)])
    monkeypatch.undo()
    captured = capsys.readouterr()
    assert code == 1 and "saved" not in captured.out and not out.exists()  # stdout: the recipe's "auto:" line
    assert captured.err.strip().splitlines()[-1].endswith(f"No space left on device; nothing is saved in {out}")


def test_a_cli_run_whose_last_save_succeeded_exits_zero_with_the_earlier_failure_as_a_warning(tmp_path, monkeypatch,
                                                                                              capsys):
    out, real, failing = tmp_path / "run5", os.fsync, iter([True])  # the first fsync fails: only the first save
    monkeypatch.setattr(run_folder.os, "fsync", lambda fd: disk_full() if next(failing, False) else real(fd))
    code = train_cli.main([*CLI_TINY, "--epochs", "2", "--out", str(out)])
    monkeypatch.undo()
    captured = capsys.readouterr()
    assert code == 0 and captured.out.splitlines()[-1].startswith(f"saved {out}: 2 epochs")
    assert captured.err.count("warning: could not save the run") == 1
    assert load_run(out).metrics["epochs_done"] == 2


# ----------------------------------------------------------------------------- a crash inside save_run


class Crash(BaseException):
    """The process dying: nothing after it runs (not even save_run's own rollback)."""


def _rename_failing_from(monkeypatch, call: int, exc: BaseException) -> None:
    real, calls = os.rename, []

    def rename(src, dst):
        calls.append(src)
        if len(calls) >= call:
            raise exc
        real(src, dst)

    monkeypatch.setattr(run_folder, "_exchange", lambda a, b: False)  # a platform without renameat2: two renames
    monkeypatch.setattr(run_folder.os, "rename", rename)


def test_a_crash_between_the_two_renames_is_repaired_by_list_runs(tmp_path, monkeypatch):
    path = make_run(tmp_path / "r", seed=0)
    before = files_of(path)
    _rename_failing_from(monkeypatch, 2, Crash())
    with pytest.raises(Crash):
        make_run(tmp_path / "r", seed=1)
    monkeypatch.undo()
    assert not path.exists() and [n for n in hidden_leftovers(tmp_path) if ".old-" in n]
    assert [r.name for r in list_runs(tmp_path)] == ["r"]
    assert files_of(path) == before and hidden_leftovers(tmp_path) == []


def test_a_failed_second_rename_puts_the_previous_run_back_at_once(tmp_path, monkeypatch):
    path = make_run(tmp_path / "r", seed=0)
    before = files_of(path)
    real, calls = os.rename, []

    def rename(src, dst):
        calls.append(src)
        if len(calls) == 2:
            raise OSError(errno.EIO, "Input/output error")
        real(src, dst)

    monkeypatch.setattr(run_folder, "_exchange", lambda a, b: False)
    monkeypatch.setattr(run_folder.os, "rename", rename)
    with pytest.raises(OSError, match="Input/output error"):
        make_run(tmp_path / "r", seed=1)
    monkeypatch.undo()
    assert files_of(path) == before and hidden_leftovers(tmp_path) == []


def test_recover_runs_drops_stale_staging_folders_but_not_fresh_ones(tmp_path):
    make_run(tmp_path / "r")
    stale = Path(tempfile.mkdtemp(dir=tmp_path, prefix=".r.new-"))
    fresh = Path(tempfile.mkdtemp(dir=tmp_path, prefix=".r.new-"))  # maybe a save in progress right now
    (stale / MODEL_FILE).write_bytes(b"half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    recover_runs(tmp_path)
    assert not stale.exists() and fresh.exists() and load_run(tmp_path / "r")


def test_an_old_copy_is_dropped_when_the_new_run_made_it(tmp_path):
    make_run(tmp_path / "r", seed=1)
    make_run(tmp_path / ".r.old-abc", seed=0)  # the crash came after the second rename
    recover_runs(tmp_path)
    assert hidden_leftovers(tmp_path) == [] and load_run(tmp_path / "r").config.train.seed == 1

