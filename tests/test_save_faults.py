"""Faults that land inside a save, placed there on purpose rather than at random moments: a process SIGKILLed while
it writes each file of the new run (half of it on disk), before the swap, and between the two renames; the disk
filling up during the data write itself. Every earlier save, and every other run, loads byte-identical."""
from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_runs import files_of, make_run
from vae_core.runs import files, load_run, recover_runs

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "VAE_THREADS": "1"}

# Saves run `r` once (seed 0), says "saved", waits for the parent, then saves it again (seed 1) with the fault point
# armed: at the chosen point the child says "inside" and hangs until it is killed.
SAVER = """
import os, sys, threading
from vae_core.runs import files, folder as run_folder
from tests.test_runs import make_run
out, point = sys.argv[1], sys.argv[2]

def hang():
    print("inside", flush=True)
    threading.Event().wait()

make_run(out, seed=0, optimizer=True)
print("saved", flush=True)
sys.stdin.readline()
if point.startswith("file-"):  # half of the k-th file written into the staging folder (a save writes each through it)
    k, calls, write = int(point[5:]), [0], files.write_atomic
    def half_then_hang(path, data):
        calls[0] += 1
        if calls[0] == k:
            with open(str(path) + ".partial", "wb") as f:
                f.write(data[: len(data) // 2])
                f.flush()
                os.fsync(f.fileno())
            hang()
        write(path, data)
    files.write_atomic = half_then_hang
elif point == "before-swap":
    run_folder._swap_in = lambda staging, run_dir: hang()
elif point == "between-renames":
    run_folder._exchange = lambda a, b: False
    rename = os.rename
    def rename_then_hang(src, dst):
        rename(src, dst)
        if ".old-" in str(dst):
            hang()
    run_folder.os.rename = rename_then_hang
make_run(out, seed=1, optimizer=True)
print("not killed", flush=True)
"""
POINTS = [f"file-{k}" for k in range(1, 7)] + ["before-swap", "between-renames"]  # 6 files: weights, Adam, 4 JSON


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_sigkill_inside_a_save_keeps_the_earlier_save_byte_identical(tmp_path, point):
    neighbour = make_run(tmp_path / "neighbour", seed=7)
    neighbour_files = files_of(neighbour)
    out = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-c", SAVER, str(out), point], cwd=ROOT, env=ENV, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "saved"
        earlier = files_of(out)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "inside"  # the kill lands inside the save, at `point`
        staged = [p.name for p in tmp_path.iterdir() if ".new-" in p.name or ".old-" in p.name]
        assert staged, "a save in progress leaves its staging (or old) folder beside the run"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    recover_runs(tmp_path)
    assert files_of(out) == earlier and load_run(out, with_optimizer=True).config.train.seed == 0
    assert files_of(neighbour) == neighbour_files


class FillsUp:
    """A file object whose write puts half of the bytes on disk and then finds the disk full."""

    def __init__(self, f):
        self.f = f

    def write(self, data: bytes) -> int:
        self.f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.mark.parametrize("nth_file", [1, 2, 4])
def test_disk_full_during_the_data_write_keeps_the_previous_run(tmp_path, monkeypatch, nth_file):
    path = make_run(tmp_path / "r", seed=0, optimizer=True)
    before = files_of(path)
    fdopen, calls = os.fdopen, [0]

    def fills_up(fd, *args, **kwargs):
        calls[0] += 1
        f = fdopen(fd, *args, **kwargs)
        return FillsUp(f) if calls[0] == nth_file else f

    monkeypatch.setattr(files.os, "fdopen", fills_up)
    with pytest.raises(OSError, match="No space left on device"):
        make_run(tmp_path / "r", seed=1, optimizer=True)
    monkeypatch.undo()
    assert calls[0] == nth_file  # the failure came from the write itself, at that file
    assert files_of(path) == before and [p.name for p in tmp_path.iterdir()] == ["r"]  # no leftovers
    assert load_run(path, with_optimizer=True).config.train.seed == 0
