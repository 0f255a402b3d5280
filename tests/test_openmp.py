"""torch's OpenMP threads spin 10,000 iterations before sleeping in every process that trains (vae_core/openmp.py:
two jobs sharing the cores ran 1.4-2.2x faster, a job alone as fast): set before torch loads, inherited by the job
workers, and never over a user's own choice. Each case runs in a fresh interpreter: libgomp reads it once."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vae_core.openmp import SPIN_COUNT

ROOT = Path(__file__).resolve().parents[1]
WORKER_SEES = """
import os
from vae_core.jobs import WORKERS

def report(conn):
    conn.send(os.environ.get("GOMP_SPINCOUNT"))

if __name__ == "__main__":
    parent, child = WORKERS.Pipe()
    p = WORKERS.Process(target=report, args=(child,))
    p.start()
    print(parent.recv())
    p.join()
"""


def run(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean | env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("entry", ["vae_core.train", "app", "bench.bench_train"])
def test_every_entry_point_sets_it_before_torch_loads(entry):
    assert run(f"import sys, os, {entry}; print('torch' in sys.modules, os.environ.get('GOMP_SPINCOUNT'))") == (
        f"True {SPIN_COUNT}")


def test_the_job_workers_inherit_it(tmp_path):
    script = tmp_path / "worker_sees.py"
    script.write_text(WORKER_SEES)
    assert run(f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')") == SPIN_COUNT


@pytest.mark.parametrize("knob, value", [("GOMP_SPINCOUNT", "5"), ("OMP_WAIT_POLICY", "PASSIVE")])
def test_a_users_own_choice_is_kept(knob, value):
    got = run("import os, vae_core; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))",
              **{knob: value})
    assert got == ("5 None" if knob == "GOMP_SPINCOUNT" else "None PASSIVE")


def test_too_late_once_torch_is_loaded():
    assert run("import torch, os, vae_core; print(os.environ.get('GOMP_SPINCOUNT'))") == "None"
