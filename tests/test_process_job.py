"""ProcessJob, the app's way to train: the same numbers as a TrainingJob, steered across the process boundary, and a
worker that crashes or is killed (as the out-of-memory killer does) is reported as a failed job, never taking the
server (this test process) down."""
from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import Dataset, load_array
from vae_core.jobs import JobPool, PoolFull, ProcessJob, TrainingJob
from vae_core.runs import load_run
from vae_core.jobs import TrainingJob
from harness.wait import wait_until

ROOT = Path(__file__).resolve().parents[1]
SMALL = ModelConfig(input_shape=(1, 8, 8), latent_dim=4, hidden_sizes=(32,))
QUICK = TrainConfig(epochs=2, batch_size=64, lr=3e-3, seed=0, lr_schedule="constant", lr_warmup_steps=0)
LONG = replace(QUICK, epochs=10_000, batch_size=16, lr=1e-3)


def without_clock(history: dict) -> dict:
    drop = {"samples_per_s", "time"}
    return {kind: [{k: v for k, v in row.items() if k not in drop} for row in rows] for kind, rows in history.items()}


def test_a_worker_process_trains_exactly_like_a_training_job(digits, tmp_path):
    thread = TrainingJob(digits, SMALL, QUICK, threads=1).start()
    process = ProcessJob(digits, SMALL, QUICK, run_dir=tmp_path / "run", threads=1).start()
    assert thread.join(timeout=120) and process.join(timeout=120)
    assert process.state == "finished" and process.error is None
    assert without_clock(process.history()) == without_clock(thread.history())  # every step row and epoch row
    z = torch.randn(5, SMALL.latent_dim)
    assert torch.equal(process.model_snapshot().decode(z), thread.model_snapshot().decode(z))
    saved = load_run(tmp_path / "run")  # the worker wrote the run folder itself
    assert saved.history == process.history() and saved.state["finished"] is True
    assert process.progress().fraction == 1.0 and process.progress().samples_per_s > 0


@pytest.mark.parametrize("board", [True, False], ids=["shared-memory", "pipe"])
def test_each_epochs_weights_reach_the_server_through_shared_memory_or_else_the_pipe(digits, tmp_path, monkeypatch,
                                                                                     board):
    from vae_core.jobs import process

    through_pipe, from_bytes = [], process._model_from_bytes
    monkeypatch.setattr(process, "_model_from_bytes", lambda *a: through_pipe.append(1) or from_bytes(*a))
    if not board:  # no room for a board (a full /dev/shm): the pipe carries them
        monkeypatch.setattr(process, "new_board", lambda state: None)
    job = ProcessJob(digits, SMALL, replace(QUICK, epochs=3), run_dir=tmp_path / "run", threads=1).start()
    assert job.join(timeout=120) and job.state == "finished", job.error
    saved = load_run(tmp_path / "run")  # written by the worker from its own weights
    for key, value in saved.model.state_dict().items():
        assert torch.equal(job.model_snapshot().state_dict()[key], value), key
    assert (len(through_pipe) == 0) if board else (len(through_pipe) >= 1)  # 3 epochs: at least the last one
    leftovers = [n for n in os.listdir("/dev/shm") if n.startswith(f"vae-images-{os.getpid()}-weights")]
    assert leftovers == []  # the board's name went as soon as the worker had mapped it


def test_a_weights_board_carries_a_state_dict_exactly_and_refuses_a_model_it_was_not_made_for(tmp_path):
    from vae_core.jobs import build_model
    from vae_core.jobs import WeightsBoard

    source, target = build_model(SMALL, 1), build_model(SMALL, 2)
    server = WeightsBoard.create(str(tmp_path), "board-", target.state_dict())
    worker = WeightsBoard(server.path, source.state_dict())  # the worker maps the same file
    worker.write(source.state_dict())
    server.read_into(target.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), target.state_dict().values()))
    bigger = build_model(replace(SMALL, hidden_sizes=(64,)), 0)
    with pytest.raises(ValueError, match=f"{server.path}: .* bytes, not the .* this model needs"):
        WeightsBoard(server.path, bigger.state_dict())


def test_pause_resume_live_lr_and_beta_and_stop_cross_the_process_boundary(digits, tmp_path):
    job = ProcessJob(digits, SMALL, LONG, run_dir=tmp_path / "run", threads=1).start()
    try:
        wait_until(lambda: job.progress().step >= 5, "the first steps")
        # the ETA once the rate has settled (3 s after the first 5 steps; "estimating…" before: tests/test_progress.py)
        wait_until(lambda: job.progress().eta_s is not None, "a settled ETA")
        progress = job.progress()  # what the Train page's progress bar shows, live from the worker
        assert progress.state == "running" and progress.samples_per_s > 0 and progress.eta_s > 0
        assert progress.total_steps == 10_000 * -(-len(job.train_idx) // 16)
        job.set_lr(5e-4)
        job.set_beta(0.5)
        wait_until(lambda: [r for r in job.history()["steps"] if r["lr"] == 5e-4 and r["beta"] == 0.5],
                   "step rows with the new lr and beta")
        job.pause()
        assert job.state == "paused"
        step = job.progress().step
        time.sleep(0.6)  # observing "not advancing" takes time: two updates of the worker's stream
        assert job.progress().step - step <= 1
        job.resume()
        wait_until(lambda: job.progress().step > step + 5, "steps after resume")
    finally:
        job.stop()
    assert job.join(timeout=60) and job.state == "stopped"
    saved = load_run(tmp_path / "run")
    assert saved.state["step"] == job.progress().step and saved.config.train.lr == 5e-4


def test_a_killed_worker_is_a_failed_job_with_the_reason_and_the_server_lives_on(digits, tmp_path):
    job = ProcessJob(digits, SMALL, LONG, run_dir=tmp_path / "run", threads=1).start()
    wait_until(lambda: job.progress().epoch >= 2, "the second epoch (the first one's autosave is then complete)")
    os.kill(job.pid, signal.SIGKILL)  # what the out-of-memory killer does
    assert job.join(timeout=30)
    assert job.state == "failed" and not job.is_active
    assert "killed" in job.error and "out of memory" in job.error and str(tmp_path / "run") in job.error
    assert load_run(tmp_path / "run").state["epoch"] >= 1  # the last autosave is intact
    again = ProcessJob(digits, SMALL, QUICK, threads=1).start()  # this process still trains
    assert again.join(timeout=120) and again.state == "finished"


def test_an_error_in_the_worker_reaches_the_session(digits):
    job = ProcessJob(digits, SMALL, replace(QUICK, lr=1e3), threads=1).start()
    assert job.join(timeout=120)
    assert job.state == "failed" and "diverged" in job.error and "learning rate" in job.error
    assert all(torch.isfinite(p).all() for p in job.model_snapshot().parameters())


def test_a_memory_mapped_dataset_reaches_the_worker_by_its_path(digits, tmp_path):
    path = tmp_path / "digits.npy"
    np.save(path, digits.images[:600, 0])
    mapped = load_array(path, mmap=True)
    in_memory = Dataset(np.array(mapped.images), name="digits.npy")
    a = ProcessJob(mapped, SMALL, QUICK, threads=1)
    assert a._share_images().path == str(path)  # no copy of a file that is already mapped
    a.start()
    b = TrainingJob(in_memory, SMALL, QUICK, threads=1).start()
    assert a.join(timeout=120) and b.join(timeout=120) and a.state == "finished"
    assert without_clock(a.history()) == without_clock(b.history())


def test_the_job_limit_holds_for_worker_processes(digits):
    pool = JobPool(max_jobs=1)
    first = pool.start("a", ProcessJob(digits, SMALL, LONG, threads=1))
    try:
        with pytest.raises(PoolFull, match="limit 1"):
            pool.start("b", ProcessJob(digits, SMALL, LONG, threads=1))
    finally:
        pool.stop_owner("a")
    assert first.join(timeout=60) and first.state == "stopped"


def test_a_worker_stops_and_saves_when_its_server_dies(tmp_path):
    """The server process is killed outright: its worker notices the closed pipe, saves and exits."""
    script = (
        "import os, sys, time\n"
        "from vae_core.config import ModelConfig, TrainConfig\n"
        "from vae_core.data import load_digits\n"
        "from vae_core.jobs import ProcessJob\n"
        "if __name__ == '__main__':\n"
        "    ds = load_digits()\n"
        f"    job = ProcessJob(ds, ModelConfig(input_shape=(1, 8, 8), latent_dim=4, hidden_sizes=(32,)),\n"
        f"                     TrainConfig(epochs=10_000, batch_size=16), run_dir=sys.argv[1], threads=1).start()\n"
        "    while job.progress().epoch < 1:\n"
        "        time.sleep(0.05)\n"
        "    print(job.pid, flush=True)\n"
        "    os._exit(1)\n"
    )
    (tmp_path / "server.py").write_text(script)
    done = subprocess.run([sys.executable, str(tmp_path / "server.py"), str(tmp_path / "run")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    worker = int(done.stdout.split()[0])

    def gone() -> bool:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return True
        return Path(f"/proc/{worker}/status").exists() and "zombie" in Path(f"/proc/{worker}/status").read_text()

    wait_until(gone, "the orphaned worker to exit")
    saved = load_run(tmp_path / "run")
    assert saved.state["finished"] is False and saved.state["step"] >= 102  # 1617 images / 16: one epoch at least


def test_a_job_starts_in_the_spare_worker_and_trains_exactly_like_a_training_job(digits):
    """warm_up() leaves a worker waiting; the next job runs in it (no process started on the job's clock), with the
    same numbers as a TrainingJob, and a new spare waits once the job has ended."""
    from vae_core.jobs.fork_server import SPARE

    SPARE.refill()
    spare = SPARE._process
    assert spare is not None and spare.is_alive()
    job = ProcessJob(digits, SMALL, QUICK, threads=1).start()
    assert job.pid == spare.pid
    reference = TrainingJob(digits, SMALL, QUICK, threads=1).start()
    assert job.join(timeout=120) and reference.join(timeout=120) and job.state == "finished"
    assert without_clock(job.history()) == without_clock(reference.history())
    wait_until(lambda: SPARE._process is not None and SPARE._process.pid != spare.pid,
               "a new spare worker")


def test_a_dead_spare_is_not_used(digits):
    from vae_core.jobs.fork_server import SPARE

    SPARE.refill()
    spare = SPARE._process
    os.kill(spare.pid, signal.SIGKILL)
    spare.join(timeout=30)
    job = ProcessJob(digits, SMALL, QUICK, threads=1).start()
    assert job.pid != spare.pid
    assert job.join(timeout=120) and job.state == "finished"


def test_the_shared_copy_of_the_images_serves_the_next_job_and_goes_with_the_array(digits):
    images = np.array(digits.images[:400])
    data = Dataset(images, name="digits-400")
    first, second = ProcessJob(data, SMALL, QUICK, threads=1), ProcessJob(data, SMALL, QUICK, threads=1)
    path = first._share_images().path
    assert second._share_images().path == path  # no second copy of the same array
    assert first._images_file is None  # kept for the next job, not unlinked after this one
    np.testing.assert_array_equal(np.memmap(path, dtype=np.float32, mode="r", shape=images.shape), images)
    for job in (first, second):
        assert job.start().join(timeout=120) and job.state == "finished"
    assert os.path.exists(path)  # kept after both jobs, for the next one
    other = Dataset(np.array(digits.images[:300]), name="digits-300")
    starting = ProcessJob(other, SMALL, QUICK, threads=1)
    kept = starting._share_images().path
    assert kept != path and os.path.exists(kept)
    assert not os.path.exists(path)  # one dataset's copy at most: the previous one is gone
    assert starting.start().join(timeout=120) and starting.state == "finished"
    del other, starting
    gc.collect()
    wait_until(lambda: not os.path.exists(kept), "the kept copy removed once its array is freed")


def test_a_copy_replaced_while_a_job_starts_stays_until_its_worker_has_mapped_it(digits):
    """Two sessions start jobs on different data at once: the first job's copy stops being the kept one before its
    worker has mapped it; the file stays for that worker and goes once it has mapped it."""
    a = ProcessJob(Dataset(np.array(digits.images[:250]), name="a"), SMALL, QUICK, threads=1)
    path = a._share_images().path  # a's images shared; its worker has not mapped them yet
    b = ProcessJob(Dataset(np.array(digits.images[:350]), name="b"), SMALL, QUICK, threads=1)
    assert b.start().join(timeout=120) and b.state == "finished"  # b's copy is the kept one now
    assert os.path.exists(path)  # still there for a's worker
    mapped = np.memmap(path, dtype=np.float32, mode="c", shape=a.dataset.images.shape)  # as a's worker maps it
    a._release_held()  # what a's listener does when its worker says "ready"
    assert not os.path.exists(path)
    np.testing.assert_array_equal(mapped, a.dataset.images)  # the mapping outlives the name


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="the shared copies live in /dev/shm on Linux")
def test_a_killed_servers_shared_copy_is_swept_by_the_next_server(digits, tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = Path("/dev/shm") / f"vae-images-{int(gone.stdout)}-abc123"  # what a SIGKILLed server leaves
    leftover.write_bytes(b"\0" * 64)
    ProcessJob(Dataset(np.array(digits.images[:200]), name="digits-200"), SMALL, QUICK, threads=1)._share_images()
    assert not leftover.exists()


def test_a_kept_copy_removed_behind_the_servers_back_is_made_again(digits):
    data = Dataset(np.array(digits.images[:220]), name="digits-220")
    first = ProcessJob(data, SMALL, QUICK, threads=1)
    path = first._share_images().path
    first._release_held()
    os.unlink(path)  # a clean-up of /dev/shm
    again = ProcessJob(data, SMALL, QUICK, threads=1)
    assert again.start().join(timeout=120) and again.state == "finished"


SPARE_MEMORY = """
import sys
from vae_core.config import ModelConfig
from vae_core.jobs.protocol import JobShape
from vae_core.jobs.worker import spare_main

def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024

class Server:  # the spare's end of the pipe: it asks for its job once it has rehearsed; the server has none
    def recv(self):
        print(rss_mb() - before)

before = rss_mb()
spare_main(Server(), JobShape(ModelConfig(input_shape=(3, 64, 64), arch="conv", latent_dim=16), batch_size=64,
                            threads=1))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and /proc")
def test_a_spare_that_rehearsed_a_large_model_does_not_keep_its_heap_while_it_waits():
    # a spare keeps its heap for its job (keep_freed_heap), but after rehearsing a 64x64 RGB conv model that heap
    # held ~250 MB of free memory; it may wait for hours, so it hands that back before it waits
    out = subprocess.run([sys.executable, "-c", SPARE_MEMORY], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    # MB more than before its rehearsal: ~100 (first torch calls, kernels, the heap it keeps), ~350 without the trim
    assert float(out.stdout) < 200


def test_a_worker_does_not_run_the_parents_main_script(tmp_path, monkeypatch):
    """Under `streamlit run`, __main__ is app.py's module: a worker that ran it again logged ~30 "missing
    ScriptRunContext" warnings per job start (and ran the whole app frame)."""
    import sys
    import time
    import types

    from vae_core.jobs.fork_server import start_worker

    script = tmp_path / "app.py"
    script.write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")
    main = types.ModuleType("__main__")
    main.__file__ = str(script)  # what Streamlit's script runner leaves in sys.modules
    monkeypatch.setitem(sys.modules, "__main__", main)
    process = start_worker(time.sleep, (0,), "probe")
    process.join(60)
    assert process.exitcode == 0 and not (tmp_path / "ran").exists()
    assert main.__spec__ is None  # put back
