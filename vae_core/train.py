"""Command line: train a VAE headless (also under torchrun for DDP) and write the run folder.

    python -m vae_core.train --data digits --epochs 30 --out runs/digits
    torchrun --nproc_per_node=2 -m vae_core.train --data shapes --epochs 10 --out runs/shapes-ddp
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import torch
import torch.distributed as dist

from .architectures import ARCHS, architecture
from .config import (LARGE_LATENT, LR_SCHEDULES, SMALL_IMAGE_PIXELS, SMALL_LATENT, ModelConfig, TrainConfig,
                     default_latent_dim)
from .data import DEFAULT_SOURCE, FILE_KINDS, SOURCES, load_source, named_source, source_named, source_words
from .likelihoods import LIKELIHOODS, likelihood
from .jobs import TrainingJob, keep_freed_heap, resolve_device
from .runs import MODEL_FILE, load_run
from .runs.checks import check_state, read_optional_json


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vae_core.train", description=__doc__.splitlines()[0])
    d, m = TrainConfig(), ModelConfig()
    add_data_args(p)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--latent-dim", type=int, default=None,
                   help=f"latent dimensions (default: {SMALL_LATENT} for images up to {SMALL_IMAGE_PIXELS} pixels, "
                        f"{LARGE_LATENT} for larger ones)")
    p.add_argument("--hidden", default=",".join(map(str, m.hidden_sizes)), help="hidden sizes, e.g. 400 or 512,256")
    p.add_argument("--arch", choices=ARCHS, default=m.arch,
                   help="; ".join(f"{name}: {architecture(name).description}" for name in ARCHS))
    p.add_argument("--likelihood", choices=LIKELIHOODS, default=m.likelihood,
                   help="; ".join(f"{name}: {likelihood(name).description}" for name in LIKELIHOODS))
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="global batch (split across torchrun ranks)")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (the schedule scales it)")
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=d.lr_schedule,
                   help="cosine: decays to 0 at the last step of --epochs")
    p.add_argument("--lr-warmup-steps", type=int, default=d.lr_warmup_steps,
                   help="linear learning-rate warm-up over this many steps")
    p.add_argument("--beta", type=float, default=d.beta)
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    p.add_argument("--free-bits", type=float, default=d.free_bits)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="share of the images held out for per-epoch validation; 0 trains on all of them (then measure "
                        "held-out quality with python -m vae_core.evaluate OUT --data FILE)")
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: all cores)")
    p.add_argument("--resume", default=None, help="continue this run folder up to --epochs in total")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def _bar(progress, width: int = 30) -> str:
    filled = int(width * progress.fraction)
    eta = f"{progress.eta_s:5.0f}s" if progress.eta_s is not None else "  ?  "
    return (f"\r[{'#' * filled}{'.' * (width - filled)}] epoch {progress.epoch}/{progress.epochs} "
            f"step {progress.step}/{progress.total_steps} {progress.samples_per_s:8.0f} img/s ETA {eta}")


def _show_progress(job: TrainingJob, done: threading.Event) -> None:
    """Redraw the progress bar on stderr twice a second until done is set."""
    while not done.wait(0.5):
        print(_bar(job.progress()), end="", file=sys.stderr, flush=True)


def hidden_sizes(text: str) -> tuple[int, ...]:
    """--hidden "512,256" as (512, 256)."""
    try:
        return tuple(int(h) for h in str(text).split(",") if h.strip())
    except ValueError:
        raise ValueError(f"--hidden must be comma-separated integers like 512,256, got {text!r}") from None


def add_data_args(p: argparse.ArgumentParser) -> None:
    """--data NAME|PATH, --labels, and --SOURCE-OPTION for each option of each source, from the sources table."""
    words, kinds = " | ".join(source_words()), ", ".join(k.label for k in FILE_KINDS)
    p.add_argument("--data", default=None,
                   help=f"{words} | PATH ({kinds}); default: {DEFAULT_SOURCE}, or the resumed run's data")
    p.add_argument("--labels", default=None, help="IDX labels file (default: found beside the images by name)")
    for source in SOURCES.values():
        for option in source.options:
            p.add_argument(f"--{source.name}-{option.name}", dest=_dest(source.name, option.name), type=int,
                           default=option.default, help=f"{source.label.lower()}: {option.help}")


def _dest(source: str, option: str) -> str:
    return f"{source}_{option}".replace("-", "_")


def data_source(args: argparse.Namespace, resume=None) -> str | dict:
    """What --data, --labels and the source's options name, or the resumed run's own data when --data is not given."""
    if args.data is None and resume is not None and resume.config.dataset:
        return resume.config.data_source
    data = args.data or DEFAULT_SOURCE
    source = source_named(data)
    options = {o.name: getattr(args, _dest(data, o.name)) for o in source.options} if source else {}
    return named_source(data, args.labels, options)


def _validation_summary(last: dict, model_cfg: ModelConfig, out: str) -> str:
    """The last epoch's validation numbers, or how to measure held-out quality when there was no validation split."""
    if last.get("val_neg_elbo") is None:
        return (f"no validation split (--val-fraction 0): evaluate on held-out images with "
                f"python -m vae_core.evaluate {out} --data FILE")
    return (f"validation -ELBO {last['val_neg_elbo']:.2f} nats/image, active units "
            f"{last.get('active_units')}/{model_cfg.latent_dim}")


def _last_save(out: str) -> str:
    """What the run folder holds after a failed save: its last complete save, or nothing."""
    try:
        if not (Path(out) / MODEL_FILE).is_file():
            return f"nothing is saved in {out}"
        state = read_optional_json(Path(out) / "state.json", check_state, {})
        return f"{out} keeps its last complete save (epoch {state.get('epoch', '?')}, step {state.get('step', '?')})"
    except (ValueError, OSError) as exc:
        return f"{out} cannot be read back ({exc})"


def _unsaved(job: TrainingJob, out: str) -> str | None:
    """Why the run is not saved as the job left it (the CLI then exits non-zero), else None."""
    return f"{job.save_error}; {_last_save(out)}" if job.save_error else None


def run(args: argparse.Namespace) -> int:
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = resolve_device(args.device)
    if distributed:
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    rank = dist.get_rank() if distributed else 0
    try:
        resume = load_run(args.resume, with_optimizer=True) if args.resume else None
        dataset = load_source(data_source(args, resume))
        hidden = hidden_sizes(args.hidden)
        model_cfg = resume.config.model if resume else ModelConfig(
            input_shape=dataset.shape, latent_dim=default_latent_dim(dataset.shape) if args.latent_dim is None else args.latent_dim,
            hidden_sizes=hidden, arch=args.arch,
            likelihood=args.likelihood)
        train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                lr_schedule=args.lr_schedule, lr_warmup_steps=args.lr_warmup_steps, beta=args.beta,
                                warmup_steps=args.warmup_steps, free_bits=args.free_bits, seed=args.seed,
                                val_fraction=args.val_fraction, log_every=args.log_every, device=device)
        job = TrainingJob(dataset, model_cfg, train_cfg, run_dir=args.out if rank == 0 else None, resume=resume,
                          threads=args.threads)
        show = rank == 0 and not args.quiet
        done = threading.Event()
        bar = threading.Thread(target=_show_progress, args=(job, done), daemon=True)
        if show:
            bar.start()
        try:
            job.run()  # in this thread: the one that built the model (see TrainingJob.run)
        except KeyboardInterrupt:
            done.set()
            unsaved = _unsaved(job, args.out)  # None on ranks > 0: they save nothing
            print(f"\ninterrupted: {unsaved or f'{args.out} holds the run as of step {job.progress().step}'}",
                  file=sys.stderr)
            return 130
        done.set()
        progress = job.progress()
        if show:
            bar.join()
            print(_bar(progress), file=sys.stderr)
        unsaved = _unsaved(job, args.out)  # None on ranks > 0: they save nothing
        if progress.error:
            print(f"error: {progress.error}", file=sys.stderr)
            if unsaved:
                print(f"error: {unsaved}", file=sys.stderr)
            return 1
        for warning in progress.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        if unsaved:  # never "saved" when the folder holds an older save or nothing
            print(f"error: {unsaved}", file=sys.stderr)
            return 1
        last = job.history()["epochs"][-1] if job.history()["epochs"] else {}
        if rank == 0:
            print(f"saved {Path(args.out)}: {progress.epoch} epochs, {_validation_summary(last, model_cfg, args.out)}")
        return 0
    finally:
        if distributed:
            dist.destroy_process_group()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        code = run(args)
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if code == 0 and not args.quiet:
        print(f"done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    keep_freed_heap()  # this process trains (not in main(): a caller's process keeps its own allocator settings)
    sys.exit(main())
