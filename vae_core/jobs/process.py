"""ProcessJob: a TrainingJob in a worker process of its own, steered from the server's threads like a TrainingJob.

Why a process (what the app uses; the CLI trains in its own thread with TrainingJob.run()): the job gets an OpenMP
thread team and a GIL of its own, so the server's script threads (drawing pages, encoding for Explore) neither slow
the steps nor are slowed by them, and a crash or an out-of-memory kill ends the worker, never the server; the
session sees it as a failed job with the reason. The images reach the worker without a copy per step: in-memory
data through one shared memory-mapped file (written once, mapped copy-on-write), a memory-mapped .npy by its path.
History rows, progress and the weights published at each epoch end stream back over a pipe (weights as
safetensors bytes); pause, resume, stop, lr and β go the other way.

A job's start costs milliseconds, not the ~0.15 s of a fork, a fresh process's first torch calls and a copy of the
images: one spare worker waits, already started, for the next job's spec (fork_server.py), and the shared copy of the
last in-memory dataset is kept for the next job on it (shared_files.py). The worker writes the run folder itself.
What crosses the pipe is declared in protocol.py.
"""
from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from safetensors.torch import load as weights_from_bytes

from ..config import ModelConfig, TrainConfig
from ..data import Dataset
from ..model import VAE
from ..runs.checks import model_skeleton
from ..runs import Run
from .core import JobCore
from .fork_server import SPARE, WORKERS, start_worker
from .progress import Progress
from .protocol import (REPORTS, Done, JobShape, JobSpec, Pause, Paused, ProtocolError, Ready, Resume, SetBeta, SetLr,
                       SharedImages, Stop, Update, WeightsRead, receive)
from .shared_files import new_board, release_images, share_images, unlink
from .worker import worker_main


class ProcessJob(JobCore):
    """A job trained in a worker process: the core's API (start, pause, resume, stop, join, set_lr, set_beta, state,
    progress, snapshot, history, model_snapshot), each call mirrored from or sent to the worker. All public methods
    are safe to call from any thread."""

    def __init__(self, dataset: Dataset, model_config: ModelConfig, train_config: TrainConfig,
                 run_dir: str | Path | None = None, resume: Run | None = None, threads: int | None = None):
        super().__init__(dataset, model_config, train_config, run_dir, resume, threads)
        self._resume_path = str(resume.path) if resume is not None else None
        self._progress = self._progress_at(*self._resumed_at(resume), rate=0.0)  # as the worker last reported it
        self._published = self._first_model(resume).eval()
        self._conn = self._process = self._images_file = self._held = self._board = None
        self._paused = threading.Event()  # set when the worker confirms a pause
        self._ended = threading.Event()  # set when the job's final state is known (what join() waits for)
        self.worker_cpu_s = 0.0  # the worker's CPU seconds, as it reports them when it ends
        self._listener = threading.Thread(target=self._listen, name="vae-job-listener", daemon=True)

    # ------------------------------------------------------------------ control (any thread)

    def start(self) -> "ProcessJob":
        """Start the worker process and return at once."""
        self._claim()
        try:
            self._board = new_board(self._published.state_dict())
            spec = JobSpec(images=self._share_images(), name=self.dataset.name, source=self.dataset.source,
                           model=self.model_config, train=self.train_config, threads=self.threads,
                           resume=self._resume_path, run_dir=self.run_dir and str(self.run_dir),
                           weights_board=self._board and self._board.path)
            spare = SPARE.take()
            if spare is not None:  # the usual case in the app: a worker waits already
                conn, self._process = spare
                conn.send(spec)
            else:
                conn, child = WORKERS.Pipe()
                self._process = start_worker(worker_main, (child, spec), "vae-training")
                child.close()
        except Exception as exc:  # no worker: a failed job with the reason, like one that failed while training
            unlink(self._images_file)
            unlink(self._board and self._board.path)
            self._release_held()
            with self._lock:
                self._state, self._error = "failed", f"could not start the training process: {exc}"
            raise
        self._conn = conn
        self._listener.start()
        return self

    def pause(self, timeout: float = 2.0) -> bool:
        """Pause, and wait (up to timeout) until the worker has streamed the steps it took before pausing."""
        paused = super().pause()
        if paused:
            self._paused.wait(timeout)
        return paused

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the worker's last messages to arrive (the job has ended then); True if they have."""
        if self._listener.ident is None:  # never started
            return True
        return self._ended.wait(timeout)

    @property
    def pid(self) -> int | None:
        """The worker process's id (None before start)."""
        return self._process.pid if self._process is not None else None

    # ------------------------------------------------------------------ commands, to the worker

    def _signal_pause(self) -> None:
        self._paused.clear()
        self._send(Pause())

    def _signal_resume(self) -> None:
        self._send(Resume())

    def _signal_stop(self) -> None:
        if self._process is not None:
            self._send(Stop())

    def _signal_lr(self, lr: float) -> None:
        self.train_config.lr = lr
        self._send(SetLr(lr))

    def _signal_beta(self, beta: float) -> None:
        self.train_config.beta = beta
        self._send(SetBeta(beta))

    # ------------------------------------------------------------------ the listener thread

    def _progress_locked(self) -> Progress:
        # the worker's last word may predate a stop: only a running job has time left to estimate
        eta = self._progress.eta_s if self._state in ("running", "finished") else None
        return dataclasses.replace(self._progress, state=self._state, eta_s=eta, error=self._error,
                                   warnings=list(self._warnings))

    def _send(self, command) -> None:
        """A command to the worker (called with the lock held); a worker that has gone ignores it."""
        if self._conn is None:
            return
        try:
            self._conn.send(command)
        except (OSError, ValueError):
            pass

    def _listen(self) -> None:
        """Mirror what the worker streams until it ends; a worker that dies without a word is a failed job."""
        final = None
        try:
            while final is None:
                match receive(self._conn, REPORTS):
                    case Update() as update:
                        self._apply(update)
                    case Paused():
                        self._paused.set()
                    case Ready():  # the worker has mapped the images and the board: their names can go
                        unlink(self._images_file)
                        unlink(self._board and self._board.path)
                        self._release_held()
                    case Done() as done:
                        final = done
        except (EOFError, OSError):
            pass
        except ProtocolError as exc:  # not what our worker says: it is stopped, and the job fails with the reason
            with self._lock:
                self._send(Stop())
            final = Done("failed", f"the training process broke the protocol: {exc}")
        self._paused.set()
        if final is None:  # its exit code says why
            self._process.join(timeout=30)
        unlink(self._images_file)
        unlink(self._board and self._board.path)
        self._release_held()  # a worker that died before mapping the images
        with self._lock:
            self._conn.close()
            self._conn = None
            if final is not None:
                self._state, self._error = final.state, final.error
                self._warnings, self.worker_cpu_s = final.warnings, final.cpu_s
            else:
                self._state, self._error = "failed", _death_message(self._process.exitcode, self.run_dir)
        self._ended.set()  # join() returns: the job's last word is in; the worker's exit is not waited for
        self._process.join(timeout=30)
        # for the next job, now that this one no longer needs the cores; rehearsed on this one's shapes
        SPARE.refill(JobShape(self.model_config, self.train_config.batch_size, self.threads))

    def _apply(self, update: Update) -> None:
        model = _model_from_bytes(self.model_config, update.weights) if update.weights is not None else None
        with self._lock:
            if update.weights_on_board:
                self._board.read_into(self._published.state_dict())
                self._version += 1
                self._send(WeightsRead())  # the worker may write the board again
            self._steps.extend(update.steps)
            if update.stride != self._stride:  # the worker thinned its history: thin the mirror alike
                self._thin_to(update.stride)
            for row in update.epochs:  # thinned row by row as the worker did: the mirror keeps the maps it kept
                self._epochs.append(row)
                self._thin_map_frames()
            self._progress = update.progress
            self._warnings = update.progress.warnings
            if model is not None:
                self._published, self._version = model, self._version + 1

    def _share_images(self) -> SharedImages:
        """How the worker finds the images (shared_files.share_images), once: a second call must not leave a hold
        behind."""
        self._release_held()
        where, own, self._held = share_images(self.dataset.images)
        if own is not None:
            self._images_file = own
        return where

    def _release_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            release_images(held)


def _death_message(exitcode: int | None, run_dir: Path | None) -> str:
    why = "it was killed (SIGKILL: most often out of memory)" if exitcode == -9 else f"exit code {exitcode}"
    saved = f"; {run_dir} holds the run as of its last completed epoch" if run_dir else ""
    return f"the training process ended unexpectedly ({why}){saved}"


def _model_from_bytes(config: ModelConfig, data: bytes) -> VAE:
    """A CPU model from safetensors bytes our own worker sent."""
    model = model_skeleton(config)
    model.load_state_dict(weights_from_bytes(data), assign=True)
    model.reset_constants()
    return model.eval()
