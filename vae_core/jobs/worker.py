"""The worker-process side of a ProcessJob: build the TrainingJob on the shared images, train it in the main
thread, obey the server's commands and stream history, progress and weights back (see process.py; what crosses the
pipe is declared in protocol.py)."""
from __future__ import annotations

import gc
import threading
import time

import numpy as np
import safetensors.torch
import torch

from ..config import ModelConfig, TrainConfig
from ..data import Dataset
from ..runs import load_run
from .board import WeightsBoard
from .heap import keep_freed_heap, trim_freed_heap
from .protocol import (COMMANDS, Done, JobShape, JobSpec, Pause, Paused, Ready, Resume, SetBeta, SetLr, Stop, Update,
                       WeightsRead, receive)
from .training import TrainingJob

SEND_EVERY_S = 0.25  # how often the worker streams new history rows and progress back


def worker_main(conn, spec: JobSpec, cpu_before: float = 0.0) -> None:
    """Build the job, obey commands in one thread, stream updates from another, train in this one. The CPU seconds
    it reports are the job's: those spent before (cpu_before, a spare's rehearsal) are not counted."""
    keep_freed_heap()
    try:
        job = _job_from(spec)
    except Exception as exc:  # reported like a failure while training, not as a dead process
        conn.send(Done("failed", f"{type(exc).__name__}: {exc}", [], time.process_time() - cpu_before))
        return
    send_lock = threading.Lock()

    def send(message) -> None:
        with send_lock:
            try:
                conn.send(message)
            except (OSError, ValueError):  # the server went away: the job stops (see _obey) and saves
                pass

    board = _open_board(spec.weights_board, job)
    send(Ready())
    streamer = _Streamer(job, send, board)
    threading.Thread(target=_obey, args=(conn, job, streamer), name="vae-commands", daemon=True).start()
    ticker = threading.Thread(target=streamer.every, args=(SEND_EVERY_S,), name="vae-stream", daemon=True)
    ticker.start()
    torch.set_num_threads(spec.threads)
    try:
        job.run()
    finally:
        streamer.done.set()
        ticker.join()
        streamer.send_update(last=True)
        progress = job.progress()
        send(Done(job.state, progress.error, progress.warnings, time.process_time() - cpu_before))
        conn.close()


def spare_main(conn, shape: JobShape | None = None) -> None:
    """A worker started before its job (see fork_server.Spare): wait for the job's spec, then be its worker. A
    server that goes away (the pipe closes) or sends None ends it. While it waits it rehearses (see rehearse): a
    forked process pays for its first torch calls, for growing its heap and for copying the pages they touch, and
    that is better paid here than on the job's clock."""
    keep_freed_heap()  # before the rehearsal, so that it warms the heap the job will use
    # what came from the fork server stays out of the collector's way: a collection writes to every object it
    # traverses, and would copy their pages into this process (a spare's own memory went from 34 to 93 MB)
    gc.freeze()
    rehearse(shape)
    gc.collect()  # the rehearsal's job lives in reference cycles (its thread, its closures): free it now
    trim_freed_heap(SPARE_FREE_HEAP)  # a spare may wait for hours: keep a small job's heap, not a large one's
    try:
        spec = receive(conn, (JobSpec, type(None)))
    except (EOFError, OSError):
        return
    if spec is not None:
        worker_main(conn, spec, cpu_before=time.process_time())


SPARE_FREE_HEAP = 64 << 20  # free heap a waiting spare keeps for its job (the 784-400-20 MLP's rehearsal left ~20 MB)
REHEARSAL_BATCH = 256  # at most: a rehearsal of a large batch of large images would hold the next job up


def rehearse(shape: JobShape | None = None) -> None:
    """One short epoch (two steps, then what a job does at an epoch end: validate, publish) on random images, on the
    CPU: of the model, batch size and threads of the job before (shape, from the server: the next job is most often
    like it, and its first steps then run in a heap already grown to their size and through kernels already used),
    else of a tiny model on one thread."""
    if shape is None:
        model, batch, threads = ModelConfig(input_shape=(1, 4, 4), latent_dim=2, hidden_sizes=(4,)), 16, 1
    else:
        model, batch, threads = shape.model, min(shape.batch_size, REHEARSAL_BATCH), shape.threads
    torch.set_num_threads(threads)
    images = np.random.default_rng(0).random((3 * batch, *model.input_shape), dtype=np.float32)
    train = TrainConfig(epochs=1, batch_size=batch, val_fraction=1 / 3, device="cpu")
    TrainingJob(Dataset(images, name="rehearsal"), model, train, threads=threads).run()


def _job_from(spec: JobSpec) -> TrainingJob:
    """The TrainingJob the server described, on the images it shared."""
    info = spec.images
    images = np.memmap(info.path, dtype=np.dtype(info.dtype), mode=info.mode, offset=info.offset,
                       shape=tuple(info.shape))
    if info.mode == "c":  # our shared copy: a plain writeable array, which the job indexes in place
        images = np.asarray(images)
    dataset = Dataset(images, name=spec.name, source=spec.source)
    resume = load_run(spec.resume, with_optimizer=True) if spec.resume else None
    return TrainingJob(dataset, spec.model, spec.train, run_dir=spec.run_dir, resume=resume, threads=spec.threads)


def _open_board(path: str | None, job: TrainingJob) -> WeightsBoard | None:
    """The server's weights board for this job, or None (the weights then go over the pipe)."""
    if not path:
        return None
    try:
        return WeightsBoard(path, job.model.state_dict())
    except (OSError, ValueError, RuntimeError):
        return None


def _obey(conn, job: TrainingJob, streamer: "_Streamer") -> None:
    """Apply the server's commands; if the server goes away (the pipe closes), stop and save."""
    while True:
        try:
            command = receive(conn, COMMANDS)
        except (EOFError, OSError):
            job.stop()
            return
        match command:
            case Pause():
                job.pause()
                streamer.send_update()  # the steps taken so far, then the confirmation the server waits for
                streamer.send(Paused())
            case Resume():
                job.resume()
            case Stop():
                job.stop()
            case SetLr(lr=lr):
                job.set_lr(lr)
            case SetBeta(beta=beta):
                job.set_beta(beta)
            case WeightsRead():
                streamer.board_read()


class _Streamer:
    """Sends what is new since the last update: step and epoch rows, the progress, the weights of a new version."""

    def __init__(self, job: TrainingJob, send, board: WeightsBoard | None = None):
        self.job, self.send = job, send
        self.last_step, self.epochs_sent, self.version = job.progress().step, len(job.history()["epochs"]), 0
        self.done = threading.Event()
        self.lock = threading.Lock()  # the ticker and a pause both send updates: one at a time, nothing twice
        self.board, self.board_free = board, threading.Event()  # free: the server has read what was written last
        self.board_free.set()

    def board_read(self) -> None:
        self.board_free.set()

    def every(self, seconds: float) -> None:
        wait = 0.05  # the first steps show at once, then a few updates a second
        while not self.done.wait(wait):
            self.send_update()
            wait = seconds

    def send_update(self, last: bool = False) -> None:
        """last: the job's final update, whose weights wait a little for the board rather than cross the pipe."""
        with self.lock:
            self._send_update(last)

    def _send_update(self, last: bool = False) -> None:
        snap = self.job.snapshot(since_step=self.last_step)
        steps, epochs, stride = snap.steps, snap.epochs[self.epochs_sent:], self.job.history_stride
        weights, on_board = None, False
        if snap.steps:
            self.last_step = snap.steps[-1]["step"]
        self.epochs_sent = len(snap.epochs)
        if snap.model_version != self.version:
            # the server reads them from the board, then says so (see board.py)
            if self.board is not None and (self.board_free.is_set() or (last and self.board_free.wait(2.0))):
                self.board_free.clear()
                self.version = self.job.read_published(self.board.write)
                on_board = True
            else:
                self.version = snap.model_version
                weights = safetensors.torch.save(
                    {k: v.contiguous() for k, v in self.job.model_snapshot().state_dict().items()})
        self.send(Update(steps, epochs, snap.progress, stride, weights, on_board))
