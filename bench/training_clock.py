"""A training job timed as the benchmarks time it: TrainingJob.run() in a thread of its own, that thread's CPU
seconds read every few milliseconds (other processes on the machine do not count), and each epoch's rows handed on
with the CPU and wall seconds at which they were seen. bench_conv and bench_quality both measure this way."""
from __future__ import annotations

import threading
import time
from typing import Callable

from vae_core.jobs import TrainingJob

EpochsSeen = Callable[[list[dict], float, float], None]  # (new epoch rows, training CPU s, wall s)


def train_timed(job: TrainingJob, name: str, on_epochs: EpochsSeen, poll_s: float = 0.005,
                cpu_budget_s: float | None = None) -> tuple[float, float]:
    """Run job to its end (or stop it past cpu_budget_s of its thread's CPU time); on_epochs gets each epoch's rows
    as they appear. Returns (CPU seconds of the training thread, wall seconds)."""
    worker = threading.Thread(target=job.run, name=name)
    wall0 = time.perf_counter()
    worker.start()
    clock = time.pthread_getcpuclockid(worker.ident)
    cpu0, cpu, seen = time.clock_gettime(clock), 0.0, 0

    def hand_on() -> None:
        nonlocal seen
        rows = job.history()["epochs"][seen:]
        if rows:
            seen += len(rows)
            on_epochs(rows, cpu if cpu_budget_s is None else min(cpu, cpu_budget_s), time.perf_counter() - wall0)

    while worker.is_alive():
        worker.join(poll_s)
        try:
            cpu = time.clock_gettime(clock) - cpu0
        except OSError:  # the thread ended between the check and the read
            break
        if job.progress().epoch > seen:
            hand_on()
        if cpu_budget_s is not None and cpu > cpu_budget_s:
            job.stop()
    worker.join()
    hand_on()  # an epoch that ended as the thread did (its clock read last a few ms before)
    return cpu, time.perf_counter() - wall0
