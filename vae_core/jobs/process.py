"""ProcessJob: a TrainingJob in a worker process of its own, steered from the server's threads like a TrainingJob.

Why a process (what the app uses; the CLI trains in its own thread with TrainingJob.run()): the job gets an OpenMP
thread team and a GIL of its own, so the server's script threads (drawing pages, encoding for Explore) neither slow
the steps nor are slowed by them, and a crash or an out-of-memory kill ends the worker, never the server; the
session sees it as a failed job with the reason. The images reach the worker without a copy per step: in-memory
data through one shared memory-mapped file (written once, mapped copy-on-write), a memory-mapped .npy by its path.
History rows, progress and the weights published at each epoch end stream back over a pipe (weights as
safetensors bytes); pause, resume, stop, lr and β go the other way.

A job's start costs milliseconds, not the ~0.15 s of a fork, a fresh process's first torch calls and a copy of the
images: one spare worker waits, already started, for the next job's spec (_Spare: started by warm_up() and again as
each job ends), and the shared copy of the last in-memory dataset is kept for the next job on it (_SharedImages).
The worker writes the run folder itself. The pipe carries only what our own worker sends (multiprocessing pickles
it); nothing a user supplies crosses it.
"""
from __future__ import annotations

import atexit
import dataclasses
import multiprocessing
import os
import tempfile
import threading
import weakref
from pathlib import Path

import numpy as np
from safetensors.torch import load as weights_from_bytes

from ..config import ModelConfig, TrainConfig
from ..data import Dataset
from ..model import VAE
from ..run_checks import model_skeleton
from ..runs import Run
from .board import WeightsBoard
from .core import JobCore
from .progress import Progress
from .protocol import (REPORTS, Done, JobShape, JobSpec, Pause, Paused, ProtocolError, Ready, Resume, SetBeta, SetLr,
                       SharedImages, Stop, Update, WeightsRead, receive)
from .worker import spare_main, worker_main

# where every training process comes from (public: the bench starts its timed runs from it too)
WORKERS = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                      else "spawn")
if WORKERS.get_start_method() == "forkserver":
    # workers fork with torch imported, and with the server's main script imported once (a worker would else
    # import it again, as multiprocessing does for spawned children: `streamlit run` imports all of Streamlit)
    # torch._dynamo too: torch.optim imports it lazily at the first optimizer (seconds, in every worker otherwise)
    WORKERS.set_forkserver_preload(["__main__", "vae_core.jobs.process", "torch._dynamo"])


_WARMED = threading.Event()


def warm_up() -> None:
    """Start the fork server (it imports torch once) and a spare worker, so that the first job starts in
    milliseconds; returns at once and does the work in a daemon thread (the first call only)."""
    if not _WARMED.is_set():
        _WARMED.set()
        threading.Thread(target=_SPARE.refill, name="vae-worker-warm-up", daemon=True).start()


class _Spare:
    """At most one worker process started ahead of its job, waiting on its pipe for the spec (worker.spare_main):
    a job takes it instead of starting a process, and a new one is started when a job ends (not while it trains: the
    fork and the first torch calls would compete with the job for the cores). A spare that died is not used."""

    def __init__(self):
        self._lock = threading.Lock()
        self._conn = self._process = None

    def take(self):
        """(conn, process) of a live spare worker, or None; the caller sends it the spec."""
        with self._lock:
            conn, process, self._conn, self._process = self._conn, self._process, None, None
        if process is not None and process.is_alive():
            return conn, process
        if conn is not None:
            conn.close()
        return None

    def refill(self, shape: JobShape | None = None) -> None:
        """Start a spare worker unless one waits already; never raises (no spare: the next job starts its own).
        shape: the model, batch size and threads of the job that just ended, for the spare to rehearse with."""
        with self._lock:
            if self._process is not None and self._process.is_alive():
                return
            try:
                conn, child = WORKERS.Pipe()
                process = WORKERS.Process(target=spare_main, args=(child, shape), name="vae-training-spare",
                                           daemon=True)
                process.start()
                child.close()
            except Exception:
                return
            self._conn, self._process = conn, process


_SPARE = _Spare()


class _SharedImages:
    """The shared file of the last in-memory dataset a job trained on, kept for the next job on the same array (one
    file: a copy of one dataset at most, removed when another replaces it, its array is freed or the server exits).
    Arrays over MAX_BYTES are copied per job, as the copy is then small beside the job and memory is not.

    A job that was handed the path holds it until its worker has mapped the file (release()): a file replaced or
    freed meanwhile is removed only then, so two sessions starting jobs on different data at once both start."""

    MAX_BYTES = 256 * 2**20

    def __init__(self):
        self._lock = threading.Lock()
        self._key = self._path = self._finalizer = None
        self._holders: dict[str, int] = {}  # path -> jobs whose worker has not mapped it yet
        self._retired: set[str] = set()  # paths no longer kept, removed when their last holder releases them

    def get(self, images: np.ndarray) -> str | None:
        """The kept copy of these images, held for the caller (release it once mapped), or None."""
        with self._lock:
            if self._key != _images_key(images):
                return None
            if not os.path.exists(self._path):  # removed behind our back (a /dev/shm clean-up): copy again
                self._key = self._path = self._finalizer = None
                return None
            self._holders[self._path] = self._holders.get(self._path, 0) + 1
            return self._path

    def keep(self, images: np.ndarray, path: str) -> bool:
        """Keep path as images' shared copy, held for the caller (True), or leave it to the caller (False: too large,
        or not weak-referable)."""
        if images.nbytes > self.MAX_BYTES:
            return False
        try:
            finalizer = weakref.finalize(images, self._forget, _images_key(images), path)
        except TypeError:
            return False
        with self._lock:
            old, self._key, self._path, self._finalizer = self._finalizer, _images_key(images), path, finalizer
            self._holders[path] = self._holders.get(path, 0) + 1
        if old is not None:
            old()  # the previous dataset's file goes (workers that map it keep their mapping)
        return True

    def release(self, path: str) -> None:
        """A holder's worker has mapped path (or will not): a retired file goes with its last holder."""
        with self._lock:
            left = self._holders.get(path, 0) - 1
            if left > 0:
                self._holders[path] = left
                return
            self._holders.pop(path, None)
            gone = path in self._retired
            self._retired.discard(path)
        if gone:
            _unlink(path)

    def _forget(self, key: tuple, path: str) -> None:
        with self._lock:
            if self._key == key:
                self._key = self._path = self._finalizer = None
            if self._holders.get(path):
                self._retired.add(path)
                return
        _unlink(path)


    def close(self) -> None:
        """At exit: every file this server made goes, held or not (its workers are ending with it)."""
        with self._lock:
            paths = {self._path, *self._holders, *self._retired} - {None}
            self._key = self._path = None
            self._holders.clear()
            self._retired.clear()
        for path in paths:
            _unlink(path)


_SHARED = _SharedImages()
atexit.register(_SHARED.close)


def _images_key(images: np.ndarray) -> tuple:
    return id(images), images.__array_interface__["data"][0], images.shape, images.dtype.str


class ProcessJob(JobCore):
    """The TrainingJob API (start, pause, resume, stop, join, set_lr, set_beta, state, progress, snapshot, history,
    model_snapshot) for a job trained in a worker process. All public methods are safe to call from any thread."""

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
            self._board = _new_board(self._published.state_dict())
            spec = JobSpec(images=self._share_images(), name=self.dataset.name, source=self.dataset.source,
                           model=self.model_config, train=self.train_config, threads=self.threads,
                           resume=self._resume_path, run_dir=self.run_dir and str(self.run_dir),
                           weights_board=self._board and self._board.path)
            spare = _SPARE.take()
            if spare is not None:  # the usual case in the app: a worker waits already
                conn, self._process = spare
                conn.send(spec)
            else:
                conn, child = WORKERS.Pipe()
                self._process = WORKERS.Process(target=worker_main, args=(child, spec), name="vae-training",
                                                 daemon=True)
                self._process.start()
                child.close()
        except Exception as exc:  # no worker: a failed job with the reason, like one that failed while training
            _unlink(self._images_file)
            _unlink(self._board and self._board.path)
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
        return dataclasses.replace(self._progress, state=self._state, error=self._error,
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
                        _unlink(self._images_file)
                        _unlink(self._board and self._board.path)
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
        _unlink(self._images_file)
        _unlink(self._board and self._board.path)
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
        _SPARE.refill(JobShape(self.model_config, self.train_config.batch_size, self.threads))

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
            self._epochs.extend(update.epochs)
            self._progress = update.progress
            self._warnings = update.progress.warnings
            if model is not None:
                self._published, self._version = model, self._version + 1

    def _share_images(self) -> SharedImages:
        """How the worker finds the images: a memory-mapped file by its path, else one shared copy in a file that
        both processes map (in /dev/shm where there is one: memory, not disk)."""
        images = self.dataset.images
        if isinstance(images, np.memmap) and images.filename and images.flags.c_contiguous:
            mapped = SharedImages(str(images.filename), images.offset, images.dtype.str, images.shape, mode="r")
            if _same_view(images, mapped):
                return mapped
        self._release_held()  # a job shares its images once; a second call must not leave a hold behind
        path = self._held = _SHARED.get(images)
        if path is None:
            folder = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
            _sweep(folder)
            fd, path = tempfile.mkstemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=folder)
            os.close(fd)
            shared = np.memmap(path, dtype=images.dtype, mode="w+", shape=images.shape)
            shared[:] = images
            shared.flush()
            del shared
            if _SHARED.keep(images, path):
                self._held = path
            else:
                self._images_file = path  # this job's own copy: unlinked once the worker has mapped it
        return SharedImages(path, 0, images.dtype.str, images.shape, mode="c")


    def _release_held(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            _SHARED.release(held)


def _same_view(images: np.ndarray, mapped: SharedImages) -> bool:
    """Whether mapping that file region gives these images (a view that transposed or sliced the file would not)."""
    try:
        again = np.memmap(mapped.path, dtype=np.dtype(mapped.dtype), mode="r", offset=mapped.offset,
                          shape=mapped.shape)
        return bool(np.array_equal(again[[0, -1]], images[[0, -1]]))
    except (OSError, ValueError):
        return False


_PREFIX = "vae-images-"


def _sweep(folder: str) -> None:
    """Remove the shared copies left by servers that were killed (the file name carries the server's pid)."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(_PREFIX)]
    except OSError:
        return
    for name in names:
        pid = name[len(_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            _unlink(os.path.join(folder, name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, and not ours to clean
        return True
    return True


def _unlink(path: str | None) -> None:
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _new_board(state: dict) -> WeightsBoard | None:
    """A weights board for a job (in /dev/shm where there is one), or None where there is no room for it."""
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    try:
        return WeightsBoard.create(folder, f"{_PREFIX}{os.getpid()}-weights-", state)
    except (OSError, ValueError):
        return None


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
