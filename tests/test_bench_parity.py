"""The parity benchmark (bench/bench_parity.py) compares like with like: the engine gets exactly the README's
pytorch/examples flags, and the examples' own loop's weights, copied into the engine's layers, compute what the
examples' model computes."""
from __future__ import annotations

import numpy as np
import torch

from bench import bench_parity
from bench.bench_train import ExamplesVAE
from vae_core.data import Dataset


def small_digits(n: int = 40) -> Dataset:
    images = (np.random.default_rng(0).random((n, 1, 28, 28)) > 0.8).astype(np.float32)
    return Dataset(images, name="tiny")


def test_the_engine_takes_the_examples_flags():
    model, train = bench_parity.engine_configs(small_digits())
    assert (model.arch, model.hidden_sizes, model.latent_dim, model.likelihood) == ("mlp", (400,), 20, "bernoulli")
    assert (train.batch_size, train.lr, train.lr_schedule, train.lr_warmup_steps, train.epochs) == (
        128, 1e-3, "constant", 0, 20)


def test_the_examples_loop_scores_as_the_examples_model():
    dataset = small_digits()
    torch.manual_seed(3)
    reference = ExamplesVAE()  # what examples_loop builds from seed 3 before training
    model = bench_parity.examples_loop(dataset, np.arange(10), epochs=0, seed=3)
    x = torch.from_numpy(dataset.batch(np.arange(4)))
    z = torch.randn(4, 20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for theirs, mine in zip(reference.encode(x.flatten(1)), model.encode(x)):
            torch.testing.assert_close(mine, theirs)
        torch.testing.assert_close(model.decode_mean(z).flatten(1), reference.decode(z))
