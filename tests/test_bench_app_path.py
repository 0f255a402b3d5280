"""The app-vs-CLI benchmark (bench/bench_app_path.py) times what it says: both paths train the whole recipe job to
its end for each architecture, and its ratio is the median of per-round ratios (CLI seconds / app seconds)."""
from __future__ import annotations

import statistics

import pytest

from bench import bench_app_path
from bench.bench_conv import configs, real_digits
from vae_core.data import split_indices

pytestmark = pytest.mark.slow


def test_both_paths_train_each_recipe_and_the_ratio_is_per_round():
    got = bench_app_path.measure(rounds=2, epochs=1, threads=1)
    n = real_digits().n
    for label, arch in bench_app_path.ARCHS.items():
        r = got[label]
        model, train = configs(arch, 0, n, epochs=1)
        assert r["setup"] == f"{model.arch}, batch {train.batch_size}, 1 epochs"
        assert all(len(s) == 2 and min(s) > 0 for s in r["seconds"].values())
        per_round = [c / a for c, a in zip(r["seconds"]["cli"], r["seconds"]["app"])]
        assert r["ratio_rounds"] == per_round and r["ratio"] == statistics.median(per_round)
        images = len(split_indices(n, train.val_fraction, train.seed)[0])
        assert r["img_per_s"]["app"] == pytest.approx(images / statistics.median(r["seconds"]["app"]))
