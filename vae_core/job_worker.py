"""The worker-process side of a ProcessJob: build the TrainingJob on the shared images, train it in the main
thread, obey the server's commands and stream history, progress and weights back (see process_job.py)."""
from __future__ import annotations

import threading
import time

import numpy as np
import safetensors.torch
import torch

from .config import ModelConfig, TrainConfig
from .data import Dataset
from .runs import load_run
from .training import TrainingJob

SEND_EVERY_S = 0.25  # how often the worker streams new history rows and progress back


def worker_main(conn, spec: dict, cpu_before: float = 0.0) -> None:
    """Build the job, obey commands in one thread, stream updates from another, train in this one. The CPU seconds
    it reports are the job's: those spent before (cpu_before, a spare's rehearsal) are not counted."""
    try:
        job = _job_from(spec)
    except Exception as exc:  # reported like a failure while training, not as a dead process
        conn.send(("done", {"state": "failed", "error": f"{type(exc).__name__}: {exc}", "warnings": [],
                            "cpu_s": time.process_time() - cpu_before}))
        return
    send_lock = threading.Lock()

    def send(message: tuple) -> None:
        with send_lock:
            try:
                conn.send(message)
            except (OSError, ValueError):  # the server went away: the job stops (see _obey) and saves
                pass

    send(("ready", None))
    streamer = _Streamer(job, send)
    threading.Thread(target=_obey, args=(conn, job, streamer), name="vae-commands", daemon=True).start()
    ticker = threading.Thread(target=streamer.every, args=(SEND_EVERY_S,), name="vae-stream", daemon=True)
    ticker.start()
    torch.set_num_threads(spec["threads"])
    try:
        job.run()
    finally:
        streamer.done.set()
        ticker.join()
        streamer.send_update()
        progress = job.progress()
        send(("done", {"state": job.state, "error": progress.error, "warnings": progress.warnings,
                       "cpu_s": time.process_time() - cpu_before}))
        conn.close()


def spare_main(conn) -> None:
    """A worker started before its job (see process_job._Spare): wait for the job's spec, then be its worker. A
    server that goes away (the pipe closes) or sends None ends it. While it waits it trains a tiny model once: a
    forked process pays for its first torch calls and for copying the pages they touch, and that is better paid
    here than on the job's clock."""
    _rehearse()
    try:
        spec = conn.recv()
    except (EOFError, OSError):
        return
    if spec is not None:
        worker_main(conn, spec, cpu_before=time.process_time())


def _rehearse() -> None:
    """One epoch of a tiny model on 32 random images, with what a job does at an epoch end (validate, publish)."""
    torch.set_num_threads(1)
    images = np.random.default_rng(0).random((32, 1, 4, 4), dtype=np.float32)
    model = ModelConfig(input_shape=(1, 4, 4), latent_dim=2, hidden_sizes=(4,))
    TrainingJob(Dataset(images, name="rehearsal"), model, TrainConfig(epochs=1, batch_size=16, val_fraction=0.25),
                threads=1).run()


def _job_from(spec: dict) -> TrainingJob:
    """The TrainingJob the server described, on the images it shared."""
    info = spec["images"]
    images = np.memmap(info["path"], dtype=np.dtype(info["dtype"]), mode=info["mode"], offset=info["offset"],
                       shape=tuple(info["shape"]))
    if info["mode"] == "c":  # our shared copy: a plain writeable array, which the job indexes in place
        images = np.asarray(images)
    dataset = Dataset(images, name=spec["name"], source=spec["source"])
    resume = load_run(spec["resume"], with_optimizer=True) if spec["resume"] else None
    return TrainingJob(dataset, spec["model"], spec["train"], run_dir=spec["run_dir"], resume=resume,
                       threads=spec["threads"])


def _obey(conn, job: TrainingJob, streamer: "_Streamer") -> None:
    """Apply the server's commands; if the server goes away (the pipe closes), stop and save."""

    def pause() -> None:
        job.pause()
        streamer.send_update()  # the steps taken so far, then the confirmation the server waits for
        streamer.send(("paused", None))

    actions = {"pause": pause, "resume": lambda: job.resume(), "stop": lambda: job.stop()}
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            job.stop()
            return
        if message[0] == "lr":
            job.set_lr(message[1])
        elif message[0] == "beta":
            job.set_beta(message[1])
        else:
            actions[message[0]]()


class _Streamer:
    """Sends what is new since the last update: step and epoch rows, the progress, the weights of a new version."""

    def __init__(self, job: TrainingJob, send):
        self.job, self.send = job, send
        self.last_step, self.epochs_sent, self.version = job.progress().step, len(job.history()["epochs"]), 0
        self.done = threading.Event()
        self.lock = threading.Lock()  # the ticker and a pause both send updates: one at a time, nothing twice

    def every(self, seconds: float) -> None:
        wait = 0.05  # the first steps show at once, then a few updates a second
        while not self.done.wait(wait):
            self.send_update()
            wait = seconds

    def send_update(self) -> None:
        with self.lock:
            self._send_update()

    def _send_update(self) -> None:
        snap = self.job.snapshot(since_step=self.last_step)
        update = {"steps": snap.steps, "epochs": snap.epochs[self.epochs_sent:], "progress": snap.progress,
                  "stride": self.job.history_stride}
        if snap.steps:
            self.last_step = snap.steps[-1]["step"]
        self.epochs_sent = len(snap.epochs)
        if snap.model_version != self.version:
            self.version = snap.model_version
            update["weights"] = safetensors.torch.save(
                {k: v.contiguous() for k, v in self.job.model_snapshot().state_dict().items()})
        self.send(("update", update))
