"""The conv benchmark (bench/bench_conv.py) compares what a user gets: the MLP is the default recipe for real MNIST
5k (vae_core/recipe.py), the conv the recipe for arch="mlp-conv" (its table entry's batch, rate and length), and
the figures it prints (nats better, time ratio, time to 3 nats better) are computed from the runs as stated."""
from __future__ import annotations

import pytest

from bench import bench_conv
from vae_core.recipe import recipe_for


def test_the_mlp_is_the_default_recipe_and_the_conv_its_table_entrys():
    for arch, expected in ((None, ("mlp", 256, 1e-2, 30)), ("mlp-conv", ("mlp-conv", 64, 5e-3, 11))):
        model, train = bench_conv.configs(arch, seed=1)
        recipe = recipe_for((1, 28, 28), 5000, 0.1, arch=arch)  # 5,000 digits, 10% held out
        assert (model.arch, train.batch_size, train.lr, train.epochs) == expected
        assert (model.latent_dim, model.hidden_sizes, train.lr_schedule, train.lr_warmup_steps, train.seed,
                train.output_bias, train.adam_beta2) == (recipe.latent_dim, (recipe.hidden,), recipe.lr_schedule,
                                                         recipe.lr_warmup_steps, 1, recipe.output_bias, recipe.adam_beta2)
    assert bench_conv.configs("mlp-conv", 0, epochs=12)[1].epochs == 12  # a point of the trade-off curve


def test_gain_time_ratio_and_time_to_three_nats_per_seed():
    mlp = [{"final": 117.0, "cpu_s": 6.0}, {"final": 118.0, "cpu_s": 5.0}]
    conv = [{"final": 113.0, "cpu_s": 15.0, "curve": [130.0, 113.9, 113.0], "curve_cpu_s": [5.0, 10.0, 15.0]},
            {"final": 116.0, "cpu_s": 9.0, "curve": [125.0, 116.0], "curve_cpu_s": [4.5, 9.0]}]
    got = bench_conv.against_mlp(mlp, conv)
    assert got["gain_nats"] == [4.0, 2.0] and got["time_ratio"] == [2.5, 1.8]
    assert got["time_to_3_nats_ratio"] == [pytest.approx(10.0 / 6.0), None]  # 113.9 <= 117 - 3 at 10 s; never
    assert (got["median_gain_nats"], got["median_time_ratio"]) == (3.0, pytest.approx(2.15))
