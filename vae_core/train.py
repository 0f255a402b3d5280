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
from .config import LR_SCHEDULES, OUTPUT_BIASES, ModelConfig, TrainConfig
from .data import (DEFAULT_SOURCE, FILE_KINDS, FILES_KIND, RESIZE, SOURCES, Dataset, named_source, source_named,
                   source_words, suggested_resize)
from .likelihoods import LIKELIHOODS, likelihood
from .jobs import TrainingJob, keep_freed_heap, resolve_device
from .recipe import Recipe, recipe_for
from .runs import MODEL_FILE, load_run
from .runs.checks import check_state, read_optional_json
from .runs.kept_data import describe_kept, keep, load_dataset


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vae_core.train", description=__doc__.splitlines()[0])
    d, m = TrainConfig(), ModelConfig()
    add_data_args(p)
    auto = " (default: the data's recipe, vae_core/recipe.py, printed as 'auto: ...')"
    p.add_argument("--epochs", type=int, default=None, help="training length" + auto)
    p.add_argument("--latent-dim", type=int, default=None, help="latent dimensions" + auto)
    p.add_argument("--hidden", default=None, help="hidden sizes, e.g. 400 or 512,256" + auto)
    p.add_argument("--arch", choices=ARCHS, default=None,
                   help="; ".join(f"{name}: {architecture(name).description}" for name in ARCHS) + auto)
    p.add_argument("--likelihood", choices=LIKELIHOODS, default=m.likelihood,
                   help="; ".join(f"{name}: {likelihood(name).description}" for name in LIKELIHOODS))
    p.add_argument("--batch-size", type=int, default=None, help="global batch (split across torchrun ranks)" + auto)
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (the schedule scales it)" + auto)
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=None,
                   help="cosine: decays the rate from --lr to 0 at the last step of --epochs; constant: keeps --lr"
                        + auto)
    p.add_argument("--lr-warmup-steps", type=int, default=None,
                   help="linear learning-rate warm-up over this many steps" + auto)
    p.add_argument("--output-bias", choices=OUTPUT_BIASES, default=None,
                   help="where a new model's output bias starts: data-mean: at the training images' mean image; "
                        "torch: torch's own initialisation (as pytorch/examples)" + auto)
    p.add_argument("--adam-beta2", type=float, default=None, help="Adam's second-moment decay" + auto)
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
    """--data NAME|PATH, --labels, and a flag for each option of each source, from the sources table: --SOURCE-OPTION,
    or the option's own flag (the file options: --resize, --class-levels)."""
    words, kinds = " | ".join(source_words()), ", ".join(k.label for k in FILE_KINDS)
    p.add_argument("--data", default=None,
                   help=f"{words} | PATH ({kinds}); default: {DEFAULT_SOURCE}, or the resumed run's data")
    p.add_argument("--labels", default=None, help="IDX labels file (default: found beside the images by name)")
    for source in SOURCES.values():
        for option in source.options:
            what = "PATH" if source.reads_files else source.label.lower()
            p.add_argument(option.cli_flag(source.name), dest=_dest(source.name, option.name), type=int,
                           metavar="N", default=option.default, help=f"{what}: {option.help}")


def _dest(source: str, option: str) -> str:
    return f"{source}_{option}".replace("-", "_")


def data_source(args: argparse.Namespace, resume=None) -> str | dict:
    """What --data, --labels and the source's options name, or the resumed run's own data when --data is not given."""
    if args.data is None and resume is not None and resume.config.dataset:
        return resume.config.data_source
    data = args.data or DEFAULT_SOURCE
    source = source_named(data) or SOURCES[FILES_KIND]
    files = SOURCES[FILES_KIND]
    for o in files.options if source is not files else ():
        if getattr(args, _dest(files.name, o.name)) != o.default:
            raise ValueError(f"{o.cli_flag(files.name)} is only used with --data PATH, not --data {data}")
    options = {o.name: getattr(args, _dest(source.name, o.name)) for o in source.options}
    return named_source(data, args.labels, options)


def data_lines(dataset: Dataset) -> list[str]:
    """What the CLI says of the data before training: what was inferred, the loader's note, a resize to consider."""
    lines = [f"data: {dataset.name}: {dataset.summary()}"] + ([f"note: {dataset.note}"] if dataset.note else [])
    side = suggested_resize(dataset)
    if side:
        c, h, w = dataset.shape
        lines.append(f"hint: the images are {h}×{w} pixels; {RESIZE.cli_flag(FILES_KIND)} {side} loads them at {side} "
                     "on the longer side (fewer pixels: faster training)")
    return lines


# flag (its argparse dest) -> the Recipe field it defaults to; the model's flags (and where its output bias starts)
# only for a new run
TRAIN_FLAGS = {"epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "lr_schedule": "lr_schedule",
               "lr_warmup_steps": "lr_warmup_steps", "adam_beta2": "adam_beta2"}
MODEL_FLAGS = {"arch": "arch", "hidden": "hidden", "latent_dim": "latent_dim", "output_bias": "output_bias"}


def fill_from_recipe(args: argparse.Namespace, recipe: Recipe, resumed: bool) -> str | None:
    """Set every setting left out on the command line from the recipe; the 'auto: ...' line that says which and why
    (None when every one was given)."""
    flags = TRAIN_FLAGS if resumed else MODEL_FLAGS | TRAIN_FLAGS
    taken = [dest for dest in flags if getattr(args, dest) is None]
    for dest in taken:
        setattr(args, dest, getattr(recipe, flags[dest]))
    if not taken:
        return None
    given = " ".join(f"--{dest.replace('_', '-')} {getattr(args, dest):g}" if isinstance(getattr(args, dest), float)
                     else f"--{dest.replace('_', '-')} {getattr(args, dest)}" for dest in taken)
    return f"auto: {given} ({recipe.why[:-1]}; vae_core/recipe.py)"


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
        dataset = load_dataset(data_source(args, resume), Path(args.resume if resume else args.out).parent)
        if rank == 0:  # the run keeps a copy of data read from files (vae_core/runs/kept_data.py)
            dataset = keep(dataset, Path(args.out).parent)
        arch = resume.config.model.arch if resume else args.arch  # a chosen architecture trains at its own settings
        auto = fill_from_recipe(args, recipe_for(dataset.shape, dataset.n, args.val_fraction, arch), resume is not None)
        if auto and rank == 0:
            print(auto, flush=True)
        model_cfg = resume.config.model if resume else ModelConfig(
            input_shape=dataset.shape, latent_dim=args.latent_dim, hidden_sizes=hidden_sizes(args.hidden),
            arch=args.arch, likelihood=args.likelihood)
        train_cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                lr_schedule=args.lr_schedule, lr_warmup_steps=args.lr_warmup_steps,
                                output_bias=resume.config.train.output_bias if resume else args.output_bias,
                                adam_beta2=args.adam_beta2,
                                beta=args.beta,
                                warmup_steps=args.warmup_steps, free_bits=args.free_bits, seed=args.seed,
                                val_fraction=args.val_fraction, log_every=args.log_every, device=device)
        job = TrainingJob(dataset, model_cfg, train_cfg, run_dir=args.out if rank == 0 else None, resume=resume,
                          threads=args.threads)
        show = rank == 0 and not args.quiet
        if show:
            kept = describe_kept(dataset.source, Path(args.out).parent)
            print("\n".join(data_lines(dataset) + [f"data: {kept}"] * bool(kept)), file=sys.stderr)
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
