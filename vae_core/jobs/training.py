"""TrainingJob: the training loop (steps, epoch-end validation, publishing the weights, autosaving) in a thread of this
process, steerable (pause, resume, stop, lr, β) from any other thread. The CLI and torchrun ranks run it in their main
thread; the app's worker processes run it too (jobs/worker.py)."""
from __future__ import annotations

import copy
import math
import threading
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..config import ModelConfig, RunConfig, TrainConfig
from ..data import Dataset
from ..epoch_maps import last_map, map_codes, map_frame
from ..media import recon_frame_images
from ..metrics import evaluate
from ..objective import kl_weight, loss_terms, lr_factor
from ..runs import Run, save_run, tensors_to_optimizer_state
from .core import JobCore
from .progress import Progress, Rate


class TrainingJob(JobCore):
    """One training run in a daemon thread (start) or in the calling thread (run). All public methods are safe to call
    from any thread."""

    def __init__(self, dataset: Dataset, model_config: ModelConfig, train_config: TrainConfig,
                 run_dir: str | Path | None = None, resume: Run | None = None, threads: int | None = None):
        super().__init__(dataset, model_config, train_config, run_dir, resume, threads)
        self._unpaused = threading.Event()
        self._unpaused.set()
        self._stop = threading.Event()
        self._pending: dict[str, float] = {}  # lr and beta set from another thread, for the next step
        self._step, self._epoch = self._resumed_at(resume)
        self._rate, self._published_step = 0.0, -1
        self._meter: Rate | None = None  # the training loop's rate meter: its steady rate is the ETA's
        self._opt: torch.optim.Optimizer | None = None
        self._unsynced: list[tuple] = []  # recorded steps whose values are still on the device
        self._resume = resume
        self._save_error: str | None = None  # why the latest save failed; None once a save succeeds
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        self._sync_every = 1 if self.device.type == "cpu" else 32  # host syncs stall an accelerator's queue: batch them
        self.model = self._first_model(resume).to(self.device)
        self._published = copy.deepcopy(self.model).cpu().eval()
        self._thread = threading.Thread(target=self._main, name="vae-training", daemon=True)

    # ------------------------------------------------------------------ control (any thread)

    def start(self) -> "TrainingJob":
        """Train in the background thread; returns at once."""
        self._claim()
        self._thread.start()
        return self

    def run(self) -> "TrainingJob":
        """Train in the calling thread until the job ends (the CLI's way); other threads may still steer it.

        On a small machine one thread doing all the torch work is faster: OpenMP keeps a thread team per calling
        thread, and once there are more OpenMP threads than cores each parallel region waits longer (steps were
        ~1.4x slower on 2 vCPUs when the model was built in one thread and trained in another)."""
        self._claim()
        self._main()
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the thread to end; True if it has."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def save_error(self) -> str | None:
        """Why the latest save of run_dir failed (then run_dir holds the save before it, or nothing), else None: the
        CLI's exit code. The app reads the same failure from the progress's warnings."""
        with self._lock:
            return self._save_error

    def read_published(self, reader) -> int:
        """reader(state dict of the published weights) under the lock, so that they do not change meanwhile (copy
        them, do not keep them); returns their version."""
        with self._lock:
            reader(self._published.state_dict())
            return self._version

    # ------------------------------------------------------------------ commands, for the training thread's next step

    def _signal_pause(self) -> None:
        self._unpaused.clear()

    def _signal_resume(self) -> None:
        self._unpaused.set()

    def _signal_stop(self) -> None:
        self._stop.set()
        self._unpaused.set()

    def _signal_lr(self, lr: float) -> None:
        self._pending["lr"] = lr

    def _signal_beta(self, beta: float) -> None:
        self._pending["beta"] = beta

    # ------------------------------------------------------------------ the training thread

    def _progress_locked(self) -> Progress:
        return self._progress_at(self._step, self._epoch, self._rate, self._meter and self._meter.steady)

    def _main(self) -> None:
        torch.set_num_threads(self.threads)
        try:
            self._train()
            self._flush()
            final = "stopped" if self._stop.is_set() else "finished"
        except _Diverged as exc:
            final = "failed"
            self.model.load_state_dict(self._published.state_dict())  # back to the last good weights
            self._opt = None  # its moments are poisoned too: never saved
            with self._lock:
                self._error = str(exc)
        except Exception as exc:  # reported to the UI; the thread must not die silently
            final = "failed"
            with self._lock:
                self._error = f"{type(exc).__name__}: {exc}"
        except KeyboardInterrupt:  # Ctrl-C during run(): save what there is, then let the caller see it
            self._stop.set()
            self._finish("stopped")
            raise
        self._finish(final)

    def _finish(self, final: str) -> None:
        self._publish()
        self._save(finished=final == "finished")
        with self._lock:
            self._state = final

    def _optimizer(self) -> torch.optim.Optimizer:
        """Adam, fused where torch has the kernel (cpu, cuda): one pass over the weights per step instead of a dozen
        (its step is 5-8x faster for the 784-400-20 MLP on CPU); the resumed run's moments loaded if it has them."""
        fused = self.device.type in ("cpu", "cuda")
        betas = (0.9, self.train_config.adam_beta2)
        opt = torch.optim.Adam(self.model.parameters(), lr=self.train_config.lr, betas=betas, fused=fused)
        if self._resume is not None and self._resume.optimizer_tensors is not None:
            groups = self._resume.state.get("optimizer_param_groups")
            if groups:
                groups = [{**g, "fused": fused, "foreach": None} for g in groups]  # this device's choice, not the saver's
                opt.load_state_dict(tensors_to_optimizer_state(self._resume.optimizer_tensors, groups))
                for group in opt.param_groups:
                    group["lr"], group["betas"] = self.train_config.lr, betas
        return opt

    def _train(self) -> None:
        cfg = self.train_config
        self.model.train()
        net = self.model
        if self.world > 1:  # gradients all-reduced across ranks (gloo on CPU, nccl on GPU: see train.py)
            ids = [self.device.index or 0] if self.device.type == "cuda" else None
            net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        opt = self._opt = self._optimizer()
        gen = torch.Generator(device=self.device)
        train_x = self._device_images()
        beta = cfg.beta
        total_steps = self.total_steps
        rate = self._meter = Rate()
        for epoch in range(self._epoch, cfg.epochs):
            # both seeded per epoch: a run resumed at an epoch boundary continues exactly as if never interrupted
            order = self.train_idx[torch.randperm(len(self.train_idx), generator=_epoch_gen(cfg.seed, epoch)).numpy()]
            gen.manual_seed(cfg.seed * 1_000_003 + epoch)
            for start in range(0, len(order), cfg.batch_size):
                paused = not self._unpaused.is_set()
                if not self._wait_unpaused():
                    return
                if paused:  # the rate starts afresh after a pause
                    rate.restart()
                peak, beta = self._apply_pending(beta)
                lr = peak * lr_factor(self._step, total_steps, cfg.lr_schedule, cfg.lr_warmup_steps)
                for group in opt.param_groups:
                    group["lr"] = lr
                batch = order[start:start + cfg.batch_size]  # the global batch; each rank takes its share below
                rows, eps, share = self._shard(batch, gen)
                x = train_x(rows)
                out = net(x, eps=eps)  # through DDP when wrapped: gradients are averaged across ranks
                terms = loss_terms(self.model, x, out, kl_weight(self._step, beta, cfg.warmup_steps), cfg.free_bits)
                self._record(terms, share, epoch, lr, rate.add(len(batch)))
                opt.zero_grad(set_to_none=True)
                # DDP averages over ranks; weighting by share * world makes that the mean over the global batch
                (terms.total * (share * self.world) if self.world > 1 else terms.total).backward()
                opt.step()
            self._flush()
            self._end_epoch(epoch)

    def _shard(self, batch: np.ndarray, gen: torch.Generator) -> tuple[np.ndarray, torch.Tensor, float]:
        """This rank's rows of a global batch, their noise eps ~ N(0, I), and their share of the batch.

        eps is drawn for the whole global batch from one seeded generator and each rank keeps its rows, so N processes
        take exactly the single-process step. A rank left without rows (a last batch smaller than the world) runs one
        row with share 0, so that every rank joins the gradient all-reduce."""
        eps = torch.randn((len(batch), self.model_config.latent_dim), generator=gen, device=self.device)  # (B, D)
        if self.world == 1:
            return batch, eps, 1.0
        rows = batch[self.rank::self.world]
        if len(rows) == 0:
            return batch[:1], eps[:1], 0.0
        return rows, eps[self.rank::self.world], len(rows) / len(batch)

    def _device_images(self):
        """A function rows -> float32 tensor on the device; in-memory data is moved once and indexed directly,
        memory-mapped (or read-only, or uint8) data is read a batch at a time."""
        images = self.dataset.images
        in_memory = type(images) is np.ndarray and images.flags.writeable and images.dtype == np.float32
        if in_memory:
            full = torch.from_numpy(images).to(self.device)
            return lambda rows: full[torch.from_numpy(rows).to(self.device)]
        return lambda rows: torch.from_numpy(self.dataset.batch(rows)).to(self.device)

    def _wait_unpaused(self) -> bool:
        while not self._unpaused.wait(0.1):
            pass
        return not self._stop.is_set()

    def _apply_pending(self, beta: float) -> tuple[float, float]:
        """The peak learning rate and beta from now on, with any set from another thread since the last step."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if "lr" in pending:
            self.train_config.lr = pending["lr"]
        if "beta" in pending:
            beta = self.train_config.beta = pending["beta"]
        return self.train_config.lr, beta

    def _record(self, terms, share: float, epoch: int, lr: float, rate: float) -> None:
        """Count the step and keep its values (on the device, where reading them would stall it); they reach the
        history at the next flush."""
        if self._sync_every == 1 and self.world == 1:  # CPU: read at once, no (3 + D) tensor assembled to read
            values = [terms.total.item(), terms.recon.item(), terms.kl.item(), *terms.kl_per_dim.tolist()]
        else:
            with torch.no_grad():  # no autograd nodes for a copy that is only read
                values = torch.cat((torch.stack((terms.total, terms.recon, terms.kl)), terms.kl_per_dim))  # (3 + D,)
        self._step += 1
        # weighted by the rank's share, the sum over ranks is the global batch mean
        self._unsynced.append((values * share if self.world > 1 else values, self._step, epoch + 1, terms.beta, lr, rate))
        if len(self._unsynced) >= self._sync_every:
            self._flush()

    def _flush(self) -> None:
        """Bring the recorded values to the host in one sync (summed across ranks), check them, keep the logged rows.

        Raises _Diverged on a non-finite loss; on CPU that happens before the step's update (every step is flushed)."""
        if not self._unsynced:
            return
        pending, self._unsynced = self._unsynced, []
        if isinstance(pending[0][0], list):  # read on the host already
            host = [entry[0] for entry in pending]
        else:
            values = torch.stack([entry[0] for entry in pending])  # (k, 3 + D)
            if self.world > 1:
                dist.all_reduce(values)  # every rank gets the same numbers, so every rank takes the same decision below
            host = values.tolist()
        rows = []
        for (_, step, epoch, beta, lr, rate), (total, recon, kl, *kl_dims) in zip(pending, host):
            if not math.isfinite(total):
                raise _Diverged(f"training diverged at step {step} (loss is {total}); the last good weights are kept "
                                "— try a lower learning rate")
            if step % (self.train_config.log_every * self._stride) == 0:  # the rows core.JobCore._thin_to keeps
                rows.append({"step": step, "epoch": epoch, "total": total, "recon": recon, "kl": kl,
                             "beta_kl": beta * kl, "beta": beta, "lr": lr, "samples_per_s": rate, "kl_per_dim": kl_dims})
        with self._lock:
            self._steps.extend(rows)
            if len(self._steps) > self._max_rows:
                self._thin_to_budget()
            self._rate = pending[-1][-1]

    def _end_epoch(self, epoch: int) -> None:
        """Validate and map the validation subsample (unless there is no validation split: val_images 0 says so),
        publish the weights, autosave."""
        row = {"epoch": epoch + 1, "step": self._step, "val_images": len(self.val_idx)}
        if len(self.val_idx):
            ev = evaluate(self.model, _Rows(self.dataset, self.val_idx), seed=self.train_config.seed)
            self.model.train()
            if not math.isfinite(ev.elbo):  # the epoch's last steps blew the weights up before a loss showed it
                raise _Diverged(f"training diverged in epoch {epoch + 1} (validation -ELBO is {-ev.elbo}); the last "
                                "good weights are kept — try a lower learning rate")
            row |= {"val_neg_elbo": -ev.elbo, "val_recon": ev.reconstruction, "val_kl": ev.kl,
                    "active_units": ev.active_units, "val_kl_per_dim": ev.kl_per_dim}
            if len(self.map_rows):
                with self._lock:
                    previous = last_map(self._epochs)
                row |= map_frame(map_codes(ev.mu[self.map_positions]), previous)  # the validation pass's μ
        row["time"] = time.time()
        frame = self._recon_frame()
        if frame is not None:
            row["val_recon_frame"] = frame
        with self._lock:
            self._epochs.append(row)
            self._epoch = epoch + 1
            self._thin_recon_frames()
            self._thin_map_frames()
        self._publish()
        self._save(finished=False)

    @torch.no_grad()
    def _recon_frame(self) -> list[int] | None:
        """The first validation images' reconstructions (decoder mean at the posterior mean), as 8-bit values in one
        flat list, for the run's reconstructions-per-epoch animation (vae_core.media.epoch_reconstructions)."""
        n = recon_frame_images(self.model_config.input_shape, len(self.val_idx))
        if n == 0:
            return None
        self.model.eval()
        x = torch.from_numpy(self.dataset.batch(self.val_idx[:n])).to(self.device)
        images = self.model.decode_mean(self.model.encode(x)[0])
        self.model.train()
        return (images.clamp(0, 1) * 255).round().to(torch.uint8).flatten().cpu().tolist()

    def _publish(self) -> None:
        """Make the current weights the ones the UI sees and saves, unless they are not finite or already published
        (a job that ends right after an epoch end publishes nothing new). The published model is only ever read
        under the lock (model_snapshot and _save copy it), so the weights are copied into it in place."""
        if self._step == self._published_step:
            return
        if all(torch.isfinite(p).all() for p in self.model.parameters()):
            with self._lock, torch.no_grad():
                for mine, theirs in zip(self._published.state_dict().values(), self.model.state_dict().values()):
                    mine.copy_(theirs)
                self._version += 1
                self._published_step = self._step

    def _save(self, finished: bool) -> None:
        """Autosave to run_dir (rank 0 only); a failed save is reported and never corrupts the previous run. A new
        job stopped before its first step saves nothing: an untrained model is not a run."""
        if self.run_dir is None or self.rank != 0 or self._step == 0:
            return
        with self._lock:
            model, history, epochs = copy.deepcopy(self._published), {"steps": list(self._steps), "epochs": list(
                self._epochs)}, list(self._epochs)
        last = epochs[-1] if epochs else {}
        metrics = {"epochs_done": len(epochs), "val_neg_elbo": last.get("val_neg_elbo"),
                   "val_recon": last.get("val_recon"), "val_kl": last.get("val_kl"),
                   "active_units": last.get("active_units"), "val_images": len(self.val_idx), "step": self._step,
                   "device": str(self.device),
                   "world_size": self.world}
        config = RunConfig(model=self.model_config, train=self.train_config, dataset=self.dataset.source | {
            "name": self.dataset.name})
        try:
            save_run(self.run_dir, model, config, history, metrics, optimizer=self._opt,
                     state={"step": self._step, "epoch": len(epochs), "finished": finished})
        except Exception as exc:  # disk full, permissions, a bad value: reported, the previous save stays intact
            with self._lock:
                self._save_error = f"could not save the run to {self.run_dir}: {exc}"
                self._warnings.append(self._save_error)
        else:
            with self._lock:
                self._save_error = None


class _Diverged(RuntimeError):
    pass


class _Rows:
    """Some rows of a dataset, read lazily a batch at a time (what metrics.evaluate needs), so a memory-mapped
    dataset is never materialised."""

    def __init__(self, dataset: Dataset, idx: np.ndarray):
        self.dataset, self.idx = dataset, idx

    @property
    def n(self) -> int:
        return len(self.idx)

    def batch(self, idx: np.ndarray) -> np.ndarray:
        return self.dataset.batch(self.idx[idx])


def _epoch_gen(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 7919 + epoch)
