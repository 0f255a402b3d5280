"""How long torch's OpenMP threads spin before they sleep, set for every process of the engine before torch loads.

torch's CPU wheel runs its parallel regions on GNU OpenMP (libgomp). By default a thread that finishes its share of
a region spins ~300,000 iterations (about a millisecond) waiting for the next one. Alone on the cores that is the
fastest; but where two torch processes share them — two sessions' jobs on one server, a job while the server
encodes for Explore — each one's spinning threads take the core the other's working thread needs, and regions wait
for scheduler ticks. Measured on this 2-vCPU VM, the MLP recipe on real MNIST 5k (30 epochs, 2 threads each):
  alone:                      2.53-2.68 s default, 2.62-2.65 s with 10,000 spins (1,000 spins: 3.65-3.74 s)
  two such jobs at once:      15.6-25.8 s each default, 11.4-11.6 s each with 10,000 spins
(and 1,000 batch-256 matmuls beside other helpers' torch tests: 4.7 s default, 2.6 s with 10,000 spins). libgomp
reads the setting once, when torch loads, so it is set in vae_core's package init, which every entry point runs
before torch loads (the CLI, the app's server, the job workers forked from the fork server, torchrun ranks, the
benchmarks); child processes inherit it. A value the user set (GOMP_SPINCOUNT, or OMP_WAIT_POLICY) is kept."""
from __future__ import annotations

import os
import sys

SPIN_COUNT = "10000"  # iterations (tens of microseconds) a waiting OpenMP thread spins before it sleeps
KNOBS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")  # a user's choice of either is left alone


def limit_spin() -> bool:
    """Set GOMP_SPINCOUNT for this process and its children unless torch is loaded already (too late: libgomp has
    read its environment) or the user chose a wait policy. True if it was set here."""
    if "torch" in sys.modules or any(os.environ.get(knob) for knob in KNOBS):
        return False
    os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    return True
