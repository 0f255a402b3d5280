"""TrainingJob: trains a VAE in a background thread, steerable (pause, resume, stop, lr, beta) from any other thread."""
from __future__ import annotations

import copy
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from .config import ModelConfig, RunConfig, TrainConfig
from .data import Dataset, split_indices
from .metrics import evaluate
from .model import VAE
from .objective import kl_weight, loss_terms
from .runs import Run, save_run, tensors_to_optimizer_state

STATES = ("created", "running", "paused", "stopping", "finished", "stopped", "failed")
_INIT_LOCK = threading.Lock()  # model init draws from torch's global RNG: one job at a time


def default_threads() -> int:
    """Intra-op threads for one job: the machine's cores (env VAE_THREADS overrides)."""
    return int(os.environ.get("VAE_THREADS", 0)) or max(1, os.cpu_count() or 1)


def build_model(config: ModelConfig, seed: int) -> VAE:
    """A freshly initialised model; same config and seed -> same weights, without touching the global RNG state."""
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return VAE(config)


@dataclass
class Progress:
    state: str
    epoch: int  # epochs completed
    epochs: int
    step: int
    total_steps: int
    samples_per_s: float
    eta_s: float | None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0


@dataclass
class Snapshot:
    progress: Progress
    steps: list[dict]  # per logged step: step, epoch, total, recon, kl, beta_kl, beta, lr, samples_per_s, kl_per_dim
    epochs: list[dict]  # per epoch: epoch, step, val_neg_elbo, val_recon, val_kl, active_units, val_kl_per_dim, ...
    model_version: int  # increases each time new weights are published (each epoch)


class TrainingJob:
    """One training run in a daemon thread. All public methods are safe to call from any thread."""

    def __init__(self, dataset: Dataset, model_config: ModelConfig, train_config: TrainConfig,
                 run_dir: str | Path | None = None, resume: Run | None = None, threads: int | None = None):
        self.dataset, self.model_config, self.train_config = dataset, model_config, train_config
        self.run_dir = Path(run_dir) if run_dir else None
        self.threads = threads or default_threads()
        self._lock = threading.Lock()
        self._unpaused = threading.Event()
        self._unpaused.set()
        self._stop = threading.Event()
        self._pending: dict[str, float] = {}
        self._state, self._error, self._warnings = "created", None, []
        self._steps: list[dict] = list(resume.history.get("steps", [])) if resume else []
        self._epochs: list[dict] = list(resume.history.get("epochs", [])) if resume else []
        self._step = int(resume.state.get("step", 0)) if resume else 0
        self._epoch = int(resume.state.get("epoch", 0)) if resume else 0
        self._rate, self._version = 0.0, 0
        self._opt: torch.optim.Optimizer | None = None
        self._resume = resume
        self.train_idx, self.val_idx = split_indices(dataset.n, train_config.val_fraction, train_config.seed)
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        self.device = torch.device(train_config.device)
        self.model = resume.model.to(self.device) if resume else build_model(model_config, train_config.seed).to(self.device)
        self._published = copy.deepcopy(self.model).cpu().eval()
        self._thread = threading.Thread(target=self._main, name="vae-training", daemon=True)

    # ------------------------------------------------------------------ control (any thread)

    def start(self) -> "TrainingJob":
        with self._lock:
            if self._state != "created":
                raise RuntimeError(f"job already {self._state}")
            self._state = "running"
        self._thread.start()
        return self

    def pause(self) -> None:
        with self._lock:
            if self._state == "running":
                self._state = "paused"
                self._unpaused.clear()

    def resume(self) -> None:
        with self._lock:
            if self._state == "paused":
                self._state = "running"
                self._unpaused.set()

    def stop(self) -> None:
        with self._lock:
            if self._state in ("running", "paused"):
                self._state = "stopping"
            self._stop.set()
            self._unpaused.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True if it has."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def set_lr(self, lr: float) -> None:
        if not lr > 0:
            raise ValueError("lr must be > 0")
        with self._lock:
            self._pending["lr"] = float(lr)

    def set_beta(self, beta: float) -> None:
        if not beta >= 0:
            raise ValueError("beta must be >= 0")
        with self._lock:
            self._pending["beta"] = float(beta)

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    @property
    def is_active(self) -> bool:
        return self.state in ("running", "paused", "stopping")

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

    def model_snapshot(self) -> VAE:
        """A CPU copy of the weights published at the last epoch end (or the start), safe to use in any thread."""
        with self._lock:
            return copy.deepcopy(self._published)

    # ------------------------------------------------------------------ the training thread

    def _progress_locked(self) -> Progress:
        cfg = self.train_config
        steps_per_epoch = math.ceil(len(self.train_idx) / self.world / self._local_batch())
        total = steps_per_epoch * cfg.epochs
        eta = (total - self._step) * cfg.batch_size / self._rate if self._rate > 0 else None
        return Progress(state=self._state, epoch=self._epoch, epochs=cfg.epochs, step=self._step, total_steps=total,
                        samples_per_s=self._rate, eta_s=eta, error=self._error, warnings=list(self._warnings))

    def _local_batch(self) -> int:
        return max(1, self.train_config.batch_size // self.world)

    def _main(self) -> None:
        torch.set_num_threads(self.threads)
        try:
            self._train()
            final = "stopped" if self._stop.is_set() else "finished"
        except _Diverged as exc:
            final = "failed"
            with self._lock:
                self._error = str(exc)
        except Exception as exc:  # reported to the UI; the thread must not die silently
            final = "failed"
            with self._lock:
                self._error = f"{type(exc).__name__}: {exc}"
        self._publish()
        self._save(finished=final == "finished")
        with self._lock:
            self._state = final

    def _optimizer(self) -> torch.optim.Optimizer:
        opt = torch.optim.Adam(self.model.parameters(), lr=self.train_config.lr)
        if self._resume is not None and self._resume.optimizer_tensors is not None:
            groups = self._resume.state.get("optimizer_param_groups")
            if groups:
                opt.load_state_dict(tensors_to_optimizer_state(self._resume.optimizer_tensors, groups))
                for group in opt.param_groups:
                    group["lr"] = self.train_config.lr
        return opt

    def _train(self) -> None:
        cfg = self.train_config
        net = self.model
        if self.world > 1:
            net = torch.nn.parallel.DistributedDataParallel(self.model)
        opt = self._optimizer()
        self._opt = opt
        gen = torch.Generator(device=self.device).manual_seed(cfg.seed * 1_000_003 + self._step)
        train_x = self._device_images(self.train_idx)
        beta = cfg.beta
        for epoch in range(self._epoch, cfg.epochs):
            order = self.train_idx[torch.randperm(len(self.train_idx), generator=_epoch_gen(cfg.seed, epoch)).numpy()]
            if self.world > 1:
                order = order[self.rank::self.world]  # DistributedSampler-style shard, reshuffled each epoch
            tick, seen = time.perf_counter(), 0
            for start in range(0, len(order), self._local_batch()):
                if not self._wait_unpaused():
                    return
                lr, beta = self._apply_pending(opt, beta)
                idx = order[start:start + self._local_batch()]
                x = train_x(idx)
                out = net(x, eps=self._noise(gen, len(idx)))  # through DDP when wrapped: gradients all-reduced
                weight = kl_weight(self._step, beta, cfg.warmup_steps)
                terms = loss_terms(self.model, x, out, weight, cfg.free_bits)
                self._check_finite(terms.total)
                opt.zero_grad(set_to_none=True)
                terms.total.backward()
                opt.step()
                seen += len(idx) * self.world
                self._record(terms, epoch, lr, seen / max(1e-9, time.perf_counter() - tick))
            self._end_epoch(epoch)

    def _device_images(self, idx: np.ndarray):
        """A function rows -> float32 tensor on the device; in-memory data is moved once and indexed directly."""
        images = self.dataset.images
        if isinstance(images, np.ndarray) and not isinstance(images, np.memmap) and images.dtype == np.float32:
            full = torch.from_numpy(images).to(self.device)
            return lambda rows: full[torch.from_numpy(rows)]
        return lambda rows: torch.from_numpy(self.dataset.batch(rows)).to(self.device)

    def _noise(self, gen: torch.Generator, n: int) -> torch.Tensor:
        """eps for the whole global batch from one seeded generator; a rank keeps its rows (same as 1 process)."""
        eps = torch.randn((n * self.world, self.model_config.latent_dim), generator=gen, device=self.device)
        return eps[self.rank::self.world] if self.world > 1 else eps

    def _wait_unpaused(self) -> bool:
        while not self._unpaused.wait(0.1):
            pass
        return not self._stop.is_set()

    def _apply_pending(self, opt: torch.optim.Optimizer, beta: float) -> tuple[float, float]:
        with self._lock:
            pending, self._pending = self._pending, {}
        if "lr" in pending:
            for group in opt.param_groups:
                group["lr"] = pending["lr"]
            self.train_config.lr = pending["lr"]
        if "beta" in pending:
            beta = self.train_config.beta = pending["beta"]
        return opt.param_groups[0]["lr"], beta

    def _check_finite(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            if not all(torch.isfinite(p).all() for p in self.model.parameters()):
                self.model.load_state_dict(self._published.state_dict())  # back to the last good weights
            self._opt = None  # its moments are poisoned too: never saved
            raise _Diverged(f"training diverged at step {self._step} (loss is {loss.item()}); the last good weights "
                            "are kept — try a lower learning rate")

    def _record(self, terms, epoch: int, lr: float, rate: float) -> None:
        self._step += 1
        if self._step % self.train_config.log_every:
            with self._lock:
                self._rate = rate
            return
        values = torch.stack([terms.total.detach(), terms.recon.detach(), terms.kl.detach()])
        kl_dims = terms.kl_per_dim.detach()
        if self.world > 1:
            dist.all_reduce(values)
            dist.all_reduce(kl_dims)
            values, kl_dims = values / self.world, kl_dims / self.world
        total, recon, kl = values.tolist()
        row = {"step": self._step, "epoch": epoch + 1, "total": total, "recon": recon, "kl": kl,
               "beta_kl": terms.beta * kl, "beta": terms.beta, "lr": lr, "samples_per_s": rate,
               "kl_per_dim": kl_dims.tolist()}
        with self._lock:
            self._steps.append(row)
            self._rate = rate

    def _end_epoch(self, epoch: int) -> None:
        ev = evaluate(self.model, self.dataset.subset(self.val_idx) if len(self.val_idx) else self.dataset,
                      seed=self.train_config.seed)
        self.model.train()
        row = {"epoch": epoch + 1, "step": self._step, "val_neg_elbo": -ev.elbo, "val_recon": ev.reconstruction,
               "val_kl": ev.kl, "active_units": ev.active_units, "val_kl_per_dim": ev.kl_per_dim, "time": time.time()}
        with self._lock:
            self._epochs.append(row)
            self._epoch = epoch + 1
        self._publish()
        self._save(finished=False)

    def _publish(self) -> None:
        """Make the current weights the ones the UI sees and saves, unless they are not finite."""
        if all(torch.isfinite(p).all() for p in self.model.parameters()):
            published = copy.deepcopy(self.model).cpu().eval()
            with self._lock:
                self._published = published
                self._version += 1

    def _save(self, finished: bool) -> None:
        """Autosave to run_dir (rank 0 only); a failed save is reported and never corrupts the previous run."""
        if self.run_dir is None or self.rank != 0:
            return
        with self._lock:
            model, history, epochs = copy.deepcopy(self._published), {"steps": list(self._steps), "epochs": list(
                self._epochs)}, list(self._epochs)
        last = epochs[-1] if epochs else {}
        metrics = {"epochs_done": len(epochs), "val_neg_elbo": last.get("val_neg_elbo"),
                   "val_recon": last.get("val_recon"), "val_kl": last.get("val_kl"),
                   "active_units": last.get("active_units"), "step": self._step, "device": str(self.device),
                   "world_size": self.world}
        config = RunConfig(model=self.model_config, train=self.train_config, dataset=self.dataset.source | {
            "name": self.dataset.name})
        try:
            save_run(self.run_dir, model, config, history, metrics, optimizer=self._opt,
                     state={"step": self._step, "epoch": len(epochs), "finished": finished})
        except OSError as exc:
            with self._lock:
                self._warnings.append(f"could not save the run to {self.run_dir}: {exc}")


class _Diverged(RuntimeError):
    pass


def _epoch_gen(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 7919 + epoch)
