"""Parity on the pytorch/examples recipe: the engine given the examples' settings as CLI flags (`--hidden 400
--latent-dim 20 --batch-size 128 --lr 1e-3 --lr-schedule constant --lr-warmup-steps 0 --output-bias torch
--epochs 20`) against the
examples' own training loop (bench/bench_train.py's ExamplesVAE and loss: sigmoid outputs, BCE and KL summed over the
batch, Adam 1e-3), on the same images and split, per seed. Both final models are scored by the engine's one
evaluation (the examples' weights copied into the same engine layers): held-out −ELBO, nats per image. Parity: the
mean paired difference (engine − loop) within two standard errors of the paired differences.

    python -m bench.bench_parity                # real MNIST 5k, 3 seeds
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics

import numpy as np
import torch

from bench.bench_quality import EXAMPLES, load_data
from bench.bench_train import ExamplesVAE, examples_loss
from vae_core import train as train_cli
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import Dataset, split_indices
from vae_core.jobs import TrainingJob
from vae_core.metrics import evaluate
from vae_core.model import VAE
from vae_core.recipe import recipe_for

FLAGS = ["--hidden", "400", "--latent-dim", "20", "--batch-size", "128", "--lr", "1e-3", "--lr-schedule", "constant",
         "--lr-warmup-steps", "0", "--output-bias", "torch", "--epochs", str(EXAMPLES["epochs"])]  # the README's flags, parsed by the CLI


def engine_configs(dataset: Dataset) -> tuple[ModelConfig, TrainConfig]:
    """The configs the CLI builds from FLAGS for this dataset (the figure is about the flags a user types; the one
    setting they leave out, the architecture, comes from the recipe as on the command line)."""
    args = train_cli.parse_args([*FLAGS, "--out", "unused"])
    train_cli.fill_from_recipe(args, recipe_for(dataset.shape, dataset.n, args.val_fraction), resumed=False)
    model = ModelConfig(input_shape=dataset.shape, arch=args.arch, latent_dim=args.latent_dim,
                        hidden_sizes=train_cli.hidden_sizes(args.hidden), likelihood=args.likelihood)
    return model, TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, lr_schedule=args.lr_schedule,
                              lr_warmup_steps=args.lr_warmup_steps, output_bias=args.output_bias)


def examples_loop(dataset: Dataset, train_idx: np.ndarray, epochs: int, seed: int) -> VAE:
    """pytorch/examples' train(): shuffled batches of 128, summed loss, Adam 1e-3; the result as an engine VAE."""
    torch.manual_seed(seed)
    net = ExamplesVAE()
    opt = torch.optim.Adam(net.parameters(), lr=EXAMPLES["lr"])
    train = torch.from_numpy(dataset.batch(train_idx)).flatten(1)  # (N, 784)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(train), generator=gen)
        for i in range(0, len(train), EXAMPLES["batch_size"]):
            data = train[order[i:i + EXAMPLES["batch_size"]]]
            opt.zero_grad()
            recon, mu, logvar = net(data)
            examples_loss(recon, data, mu, logvar).backward()
            opt.step()
    model = VAE(engine_configs(dataset)[0])
    with torch.no_grad():  # fc1, fc21, fc22, fc3, fc4 are the engine's layers in order (fc4's output: the logits)
        for mine, theirs in zip(model.parameters(), net.parameters(), strict=True):
            mine.copy_(theirs.view_as(mine))
    return model


def measure(data: str = "mnist-5k", seeds: tuple[int, ...] = (0, 1, 2)) -> dict:
    """Per seed the held-out −ELBO of the engine (CLI flags) and of the examples' loop; their mean difference and
    the seeds' spread."""
    dataset = load_data(data)
    model_cfg, train_cfg = engine_configs(dataset)
    rows = []
    for seed in seeds:
        train_idx, val_idx = split_indices(dataset.n, train_cfg.val_fraction, seed)
        held_out = dataset.subset(val_idx)
        job = TrainingJob(dataset, model_cfg, dataclasses.replace(train_cfg, seed=seed), threads=1).run()
        engine = -evaluate(job.model_snapshot(), held_out, seed=0).elbo
        loop = -evaluate(examples_loop(dataset, train_idx, train_cfg.epochs, seed), held_out, seed=0).elbo
        rows.append({"seed": seed, "engine": engine, "examples_loop": loop})
    diffs = [r["engine"] - r["examples_loop"] for r in rows]
    noise = 2 * statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else None  # two standard errors
    return {"data": dataset.name, "n": dataset.n, "flags": " ".join(FLAGS), "per_seed": rows,
            "mean_difference": statistics.mean(diffs), "noise": noise,
            "within_noise": noise is not None and abs(statistics.mean(diffs)) <= noise}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m bench.bench_parity", description=__doc__.splitlines()[0])
    p.add_argument("--data", default="mnist-5k", help="mnist-5k (real), mnist-like, or a 28×28 IDX file")
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args(argv)
    result = measure(args.data, tuple(range(args.seeds)))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
