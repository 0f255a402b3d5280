"""What every training job shares, whether it trains in a thread of this process (TrainingJob) or in a worker process
(ProcessJob): its setup (the device, the split, the first model), its state machine (start, pause, resume, stop; a new
lr or β checked by TrainConfig's rules) and its history (step and epoch rows, thinned evenly as a long run outgrows
its budget; the reconstructions and latent maps kept per epoch, thinned alike), all read and changed under the job's
lock."""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import threading
from pathlib import Path

import torch

from ..architectures import architecture
from ..config import ModelConfig, TrainConfig
from ..data import Dataset, split_indices
from ..epoch_maps import map_positions, thin_map_frames
from ..media import RECON_FRAMES
from ..model import VAE
from ..runs import Run
from .progress import Progress, Snapshot

# created -> running <-> paused; running or paused -> stopping; then finished, stopped or failed
STATES = ("created", "running", "paused", "stopping", "finished", "stopped", "failed")
ACTIVE = ("running", "paused", "stopping")
HISTORY_VALUES = 2_000_000  # numbers kept in the step history (~40 MB of JSON), well inside what runs.load_run reads
_INIT_LOCK = threading.Lock()  # model init draws from torch's global RNG: one job at a time


def default_threads() -> int:
    """Intra-op threads for one job: env VAE_THREADS or OMP_NUM_THREADS, else the usable cores split among the
    processes torchrun started on this machine."""
    for var in ("VAE_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)))


def resolve_device(name: str = "auto") -> str:
    """'auto' picks cuda, then mps, then cpu (under torchrun each rank takes its LOCAL_RANK's GPU); a named device
    must exist here, or a ValueError says so."""
    if name == "auto":
        if not torch.cuda.is_available():
            return "mps" if _mps_available() else "cpu"
        name = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"  # checked below: more ranks than GPUs is an error
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not (torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()):
        raise ValueError(f"device {name!r} is not available: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if device.type == "mps" and not _mps_available():
        raise ValueError(f"device {name!r} is not available on this machine")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {name!r} is not supported: use auto, cpu, cuda, cuda:N or mps")
    return name


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def build_model(config: ModelConfig, seed: int) -> VAE:
    """A freshly initialised model; same config and seed -> same weights, without touching the global RNG state."""
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return VAE(config)


def refuse_untrainable(config: ModelConfig) -> None:
    """Only the engine's own architectures train: an imported network (vae_core/imports/) is explored as it is."""
    if not architecture(config.arch).trainable:
        raise ValueError(f"this model was imported (arch {config.arch!r}): it is explored as it was trained elsewhere "
                         "and cannot be trained or continued here; train a new model instead")


class JobCore:
    """A training job's setup, state machine and history. A job kind adds how it trains (start, join) and how a
    command reaches its training: the _signal_* hooks, called with the lock held once the state has moved. All public
    methods are safe to call from any thread."""

    def __init__(self, dataset: Dataset, model_config: ModelConfig, train_config: TrainConfig,
                 run_dir: str | Path | None = None, resume: Run | None = None, threads: int | None = None):
        refuse_untrainable(model_config)
        self.dataset, self.model_config = dataset, model_config
        self.run_dir = Path(run_dir) if run_dir else None
        self.threads = threads or default_threads()
        self.train_idx, self.val_idx = split_indices(dataset.n, train_config.val_fraction, train_config.seed)
        # the validation images on the latent map, and where they sit among the validation rows (their codes then
        # come from the validation pass)
        self.map_positions = map_positions(len(self.val_idx), train_config.seed)
        self.map_rows = self.val_idx[self.map_positions]
        self.device = torch.device(resolve_device(train_config.device))
        # a private copy: set_lr / set_beta update it (so the saved config tells what was used), not the caller's;
        # "auto" is recorded as what it picked
        self.train_config = dataclasses.replace(train_config, device=str(self.device))
        self._lock = threading.Lock()
        self._state, self._error, self._warnings = "created", None, []
        self._steps: list[dict] = list(resume.history.get("steps", [])) if resume else []
        self._epochs: list[dict] = list(resume.history.get("epochs", [])) if resume else []
        # a long run keeps every stride-th logged row: the stride doubles whenever the history outgrows its budget
        self._stride, self._max_rows = 1, max(100, HISTORY_VALUES // (12 + model_config.latent_dim))
        self._version = 0  # of the published weights
        self._published: VAE  # the weights the UI sees and saves (a CPU model), set by the job kind

    @staticmethod
    def _resumed_at(resume: Run | None) -> tuple[int, int]:
        """(step, epoch) where the job starts: 0, 0 or where the resumed run stopped."""
        return (int(resume.state.get("step", 0)), int(resume.state.get("epoch", 0))) if resume else (0, 0)

    def _first_model(self, resume: Run | None) -> VAE:
        """The job's own model to start from: the resumed run's, else a freshly initialised one (its output bias at
        the training images' mean where the config says so)."""
        if resume:
            return copy.deepcopy(resume.model)
        model = build_model(self.model_config, self.train_config.seed)
        if self.train_config.output_bias == "data-mean":
            model.start_output_at(torch.from_numpy(self.dataset.mean_image(self.train_idx)).float())
        return model

    @property
    def total_steps(self) -> int:
        return math.ceil(len(self.train_idx) / self.train_config.batch_size) * self.train_config.epochs

    # ------------------------------------------------------------------ the state machine (any thread)

    def start(self) -> "JobCore":
        """Start training and return at once (the job kind says where it trains)."""
        raise NotImplementedError

    def join(self, timeout: float | None = None) -> bool:
        """Wait until the job has ended; True if it has."""
        raise NotImplementedError

    def _claim(self) -> None:
        """created -> running, once: a job is started one time."""
        with self._lock:
            if self._state != "created":
                raise RuntimeError(f"job already {self._state}")
            self._state = "running"

    def pause(self) -> bool:
        """running -> paused: the job pauses before its next step. True if it was running."""
        with self._lock:
            if self._state != "running":
                return False
            self._state = "paused"
            self._signal_pause()
            return True

    def resume(self) -> None:
        """paused -> running."""
        with self._lock:
            if self._state == "paused":
                self._state = "running"
                self._signal_resume()

    def stop(self) -> None:
        """running or paused -> stopping: the job ends after its current step and saves. The training is told
        whatever the state (what it does with that is the job kind's)."""
        with self._lock:
            if self._state in ("running", "paused"):
                self._state = "stopping"
            self._signal_stop()

    def set_lr(self, lr: float) -> None:
        """The peak learning rate from the next step on (the schedule scales it); TrainConfig's rule checks it."""
        lr = dataclasses.replace(self.train_config, lr=float(lr)).lr
        with self._lock:
            self._signal_lr(lr)

    def set_beta(self, beta: float) -> None:
        """β from the next step on; TrainConfig's rule checks it."""
        beta = dataclasses.replace(self.train_config, beta=float(beta)).beta
        with self._lock:
            self._signal_beta(beta)

    def _signal_pause(self) -> None:
        raise NotImplementedError

    def _signal_resume(self) -> None:
        raise NotImplementedError

    def _signal_stop(self) -> None:
        raise NotImplementedError

    def _signal_lr(self, lr: float) -> None:
        raise NotImplementedError

    def _signal_beta(self, beta: float) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ what a page reads (any thread)

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE

    @property
    def error(self) -> str | None:
        with self._lock:
            return self._error

    def progress(self) -> Progress:
        with self._lock:
            return self._progress_locked()

    def snapshot(self, since_step: int = 0) -> Snapshot:
        """A consistent copy of the history (rows after since_step only, if given) and the progress."""
        with self._lock:
            steps = [r for r in self._steps if r["step"] > since_step] if since_step else list(self._steps)
            return Snapshot(progress=self._progress_locked(), steps=steps, epochs=list(self._epochs),
                            model_version=self._version)

    def history(self) -> dict[str, list]:
        with self._lock:
            return {"steps": list(self._steps), "epochs": list(self._epochs)}

    @property
    def history_stride(self) -> int:
        """Every how many logged rows the step history keeps one (1 until a long run outgrows its budget)."""
        with self._lock:
            return self._stride

    def model_snapshot(self) -> VAE:
        """A CPU copy of the weights published last (each epoch end, the start and the end), safe in any thread."""
        with self._lock:
            return copy.deepcopy(self._published)

    def _progress_locked(self) -> Progress:
        raise NotImplementedError

    def _progress_at(self, step: int, epoch: int, rate: float, steady: float | None = None) -> Progress:
        """The progress at step and epoch, training at rate images/s (0: not measured yet); the ETA from the steady
        rate (progress.Rate.steady; None until it has settled) while the job runs, 0 once it has finished, None
        otherwise (paused, stopped, failed: no time is left to estimate). Called with the lock."""
        total, batch = self.total_steps, self.train_config.batch_size
        eta = (total - step) * batch / steady if steady and self._state == "running" else None
        eta = 0.0 if self._state == "finished" else eta
        return Progress(state=self._state, epoch=epoch, epochs=self.train_config.epochs, step=step, total_steps=total,
                        samples_per_s=rate, eta_s=eta, error=self._error, warnings=list(self._warnings))

    # ------------------------------------------------------------------ the history's thinning (with the lock)

    def _thin_to_budget(self) -> None:
        """Double the stride until the step rows fit their budget again: every other row goes, from the start."""
        while len(self._steps) > self._max_rows:
            self._thin_to(self._stride * 2)

    def _thin_to(self, stride: int) -> None:
        """Keep the step rows of every stride-th log only."""
        self._stride = stride
        every = self.train_config.log_every * stride
        self._steps = [r for r in self._steps if r["step"] % every == 0]

    def _thin_recon_frames(self) -> None:
        """Keep at most RECON_FRAMES epochs' reconstructions: past that, drop every other one (first and last kept)."""
        kept = [i for i, r in enumerate(self._epochs) if "val_recon_frame" in r]
        if len(kept) > RECON_FRAMES:
            for i in kept[1:-1:2]:
                self._epochs[i] = {k: v for k, v in self._epochs[i].items() if k != "val_recon_frame"}

    def _thin_map_frames(self) -> None:
        """Keep the latent maps of the epochs within their cap (epoch_maps.thin_map_frames)."""
        self._epochs = thin_map_frames(self._epochs)
