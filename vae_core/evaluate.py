"""Command line: evaluate a run on held-out data and print one JSON object (nats per image).

    python -m vae_core.evaluate runs/digits --data digits --iwae-k 50 --json

`--data digits` / `--data shapes` (a source of the data sources table that reads no file) mean the run's own
validation split; a PATH is evaluated in full (the held-out measure of a run trained with --val-fraction 0), read
with the run's own file options (--resize, --class-levels) unless given.
"""
from __future__ import annotations

import argparse
import json
import sys

from pathlib import Path

from .config import RunConfig
from .data import (DEFAULT_SOURCE, FILE_OPTIONS, FILES_KIND, Dataset, file_kind, file_options, load_source,
                   named_source, source_named, source_words, split_indices)
from .metrics import encode_dataset, evaluate, mig
from .runs import Run, load_run, read_run_config
from .runs.budget import ENCODE_BATCH, RunCost, check_budget, price

EVALUATE_BATCH = 512  # vae_core.metrics.evaluate's batch: IWAE takes batch // k images at a time, k samples each


def held_out(config: RunConfig, name: str, data: str, labels: str | None = None,
             options: dict | None = None) -> Dataset:
    """The images to evaluate on: run `name`'s validation split for a built-in source, else the whole file, read
    with the file options given (--resize, --class-levels) or else those the run was trained with, where the file's
    kind takes them (a run trained on images resized on load is evaluated at the same size)."""
    if source_named(data):
        recorded = config.data_source
        source = recorded if isinstance(recorded, dict) and recorded.get("kind") == data else data
        dataset = load_source(source)
        _, val = split_indices(dataset.n, config.train.val_fraction, config.train.seed)
        if not len(val):
            raise ValueError(f"{name} was trained without a validation split (val_fraction 0): pass --data FILE "
                             "with held-out images")
        return dataset.subset(val)
    chosen = {k: v for k, v in (options or {}).items() if v is not None}
    return load_source(named_source(data, labels, {**recorded_file_options(config, data), **chosen}))


def recorded_file_options(config: RunConfig, path: str) -> dict:
    """The file options the run's data was read with, those that the file at path takes ({} when none apply)."""
    try:
        takes = file_kind(Path(path)).options
    except (ValueError, OSError):  # a missing or unknown file: load_source says so
        return {}
    return {k: v for k, v in file_options(config.dataset).items() if k in takes}


def evaluation_cost(config: RunConfig, n_images: int, iwae_k: int) -> RunCost:
    """The memory of report(): a batch of images, or IWAE's k samples of each of batch // k images, through both
    networks, with their codes (vae_core/runs/budget.py)."""
    iwae_rows = max(1, EVALUATE_BATCH // iwae_k) * iwae_k if iwae_k > 0 else 0
    return price(config.model, n_images, extra_rows=iwae_rows, batch=max(min(n_images, ENCODE_BATCH), iwae_rows))


def report(run: Run, dataset: Dataset, iwae_k: int, seed: int) -> dict:
    if dataset.shape != tuple(run.config.model.input_shape):
        raise ValueError(f"{dataset.name}: images are {dataset.shape}, the model expects {tuple(run.config.model.input_shape)}")
    result = evaluate(run.model, dataset, iwae_k=iwae_k, seed=seed).to_dict()
    if dataset.factors is not None and run.config.model.latent_dim >= 2:
        mu, _ = encode_dataset(run.model, dataset)
        result["mig"] = mig(mu, dataset.factors)
    return {"run": run.name, "data": dataset.name, **result}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vae_core.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--data", default=DEFAULT_SOURCE,
                   help=f"{' | '.join(source_words())} (the run's validation split) | PATH")
    p.add_argument("--labels", default=None, help="IDX labels file for PATH")
    for option in FILE_OPTIONS:
        p.add_argument(option.cli_flag(FILES_KIND), dest=option.name, type=int, metavar="N", default=None,
                       help=f"PATH: {option.help} (default: as the run was trained)")
    p.add_argument("--iwae-k", type=int, default=50, help="importance samples for the IWAE bound (0: skip)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    args = p.parse_args(argv)
    try:
        if args.iwae_k < 0:
            raise ValueError("--iwae-k must be >= 0")
        config, name = read_run_config(args.run_dir), Path(args.run_dir).name
        dataset = held_out(config, name, args.data, args.labels, {o.name: getattr(args, o.name) for o in FILE_OPTIONS})
        check_budget(evaluation_cost(config, dataset.n, args.iwae_k), f"evaluating {name} on {dataset.n:,} images")
        result = report(load_run(args.run_dir), dataset, args.iwae_k, args.seed)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:  # what the budget did not foresee ends in one line, not a traceback
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result))
    else:
        iwae = f"  IWAE(k={args.iwae_k}) {result['iwae']:.2f}" if result["iwae"] is not None else ""
        print(f"{result['run']} on {result['data']} (n={result['n']}): ELBO {result['elbo']:.2f} = -(recon "
              f"{result['reconstruction']:.2f} + KL {result['kl']:.2f}){iwae}  active units {result['active_units']}")
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
