"""The app's training path against the CLI's by wall clock on every core: what a user waits for (issue 22, item 2).

    python -m bench.bench_app_path                    # MLP and the light conv, 3 rounds each, real MNIST 5k
    python -m bench.bench_app_path --rounds 5 --json app_path.json

Each architecture trains its own recipe (vae_core/recipe.py, as the Train form and the CLI start from it: the MLP
30 epochs at batch 256, the conv its table entry's length and batch) on 5,000 real MNIST digits (bench_conv's split),
with the default threads (every core), twice a round:
- "cli": TrainingJob.run() in the main thread of a fresh process forked from the app's fork server, after the
  rehearsal the app's spare worker does (off the clock), as `python -m vae_core.train` trains once started;
- "app": a ProcessJob started and joined from this process, as the Train page's job runs (its worker process, the
  streaming of history, progress and each epoch's weights back, all on the clock).
Each round runs both back to back, the order reversed every round; the ratio is the median of the per-round ratios
(CLI seconds / app seconds: the app's speed relative to the CLI's). Target: >= 0.95x for both architectures. Figures
mean something only on a quiet machine (nothing else on the cores): wall time is what a neighbour moves."""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
import statistics
import time

from bench.bench_conv import CONV, configs, real_digits
from bench.bench_train import forked
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import Dataset, split_indices
from vae_core.jobs import JobShape, ProcessJob, TrainingJob, default_threads, keep_freed_heap, rehearse

ARCHS = {"mlp": None, CONV: CONV}  # label -> the recipe's arch argument (None: the default recipe's choice)


def _cli_main(conn, dataset: Dataset, model: ModelConfig, train: TrainConfig, threads: int) -> None:
    """In a fresh process: rehearse as a spare worker does, then time TrainingJob.run(); sends ("ok", wall s)."""
    import torch

    try:
        keep_freed_heap()  # as the CLI sets it
        torch.set_num_threads(threads)
        rehearse(JobShape(model, train.batch_size, threads))
        job = TrainingJob(dataset, model, train, threads=threads)
        start = time.perf_counter()
        job.run()
        wall = time.perf_counter() - start
        conn.send(("ok", wall) if job.state == "finished" else ("error", f"ended {job.state}: {job.error}"))
    except BaseException as exc:  # reported to the parent, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def cli_seconds(dataset: Dataset, model: ModelConfig, train: TrainConfig, threads: int) -> float:
    return forked(_cli_main, (dataset, model, train, threads), "CLI path")


def app_seconds(dataset: Dataset, model: ModelConfig, train: TrainConfig, threads: int) -> float:
    job = ProcessJob(dataset, model, train, threads=threads)
    start = time.perf_counter()
    job.start().join()
    wall = time.perf_counter() - start
    if job.state != "finished":
        raise RuntimeError(f"app path ended {job.state}: {job.error}")
    return wall


def measure(rounds: int = 3, epochs: int | None = None, threads: int | None = None) -> dict:
    """Per architecture: each round's CLI and app wall seconds, the per-round ratios and their median."""
    threads = threads or default_threads()
    dataset = real_digits()
    result: dict = {"threads": threads, "rounds": rounds, "data": f"real MNIST 5k ({dataset.n:,} images)"}
    for label, arch in ARCHS.items():
        model, train = configs(arch, 0, dataset.n, epochs=epochs)
        # off the record, a short job each way: the spare worker rehearsed on this shape, the shared copy of the
        # images made, the fork server's own lazy warm-up done (a CLI child forked before it was done paid ~2-8 s)
        for run in (app_seconds, cli_seconds):
            run(dataset, model, replace(train, epochs=1), threads)
        seconds: dict[str, list[float]] = {"cli": [], "app": []}
        for r in range(rounds):
            for path in (("cli", "app") if r % 2 == 0 else ("app", "cli")):
                run = cli_seconds if path == "cli" else app_seconds
                seconds[path].append(run(dataset, model, replace(train, seed=r), threads))
        ratios = [c / a for c, a in zip(seconds["cli"], seconds["app"])]
        images = len(split_indices(dataset.n, train.val_fraction, train.seed)[0]) * train.epochs  # a whole job's
        rates = {path: images / statistics.median(s) for path, s in seconds.items()}
        result[label] = {"seconds": seconds, "img_per_s": rates, "ratio_rounds": ratios,
                         "ratio": statistics.median(ratios),
                         "setup": f"{model.arch}, batch {train.batch_size}, {train.epochs} epochs", "target": 0.95}
    return result


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.bench_app_path", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=None, help="every run's epochs (default: each recipe's own)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    result = measure(args.rounds, args.epochs, args.threads)
    for label in ARCHS:
        r = result[label]
        print(f"{label:10s} app / CLI {r['ratio']:.3f}x by wall clock on {result['threads']} threads (target >= 0.95; "
              f"rounds {', '.join(f'{x:.2f}' for x in r['ratio_rounds'])}); CLI "
              f"{statistics.median(r['seconds']['cli']):.2f} s, app {statistics.median(r['seconds']['app']):.2f} s "
              f"({r['setup']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
