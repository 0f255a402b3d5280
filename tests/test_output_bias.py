"""Where a new model's output bias starts (TrainConfig.output_bias): at the training images' mean image by default,
at torch's own initialisation when asked (the pytorch/examples recipe, and every run saved before the setting)."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import Dataset, load_digits
from vae_core.jobs import TrainingJob
from vae_core.jobs.core import build_model
from vae_core.likelihoods import MEAN_EPS
from vae_core.recipe import recipe_for
from vae_core.runs import load_run

SMALL = ModelConfig(input_shape=(1, 8, 8), latent_dim=4, hidden_sizes=(32,))
QUICK = TrainConfig(epochs=1, batch_size=64, lr=3e-3, seed=0, lr_schedule="constant", lr_warmup_steps=0)


def train_mean(dataset: Dataset, train: TrainConfig) -> np.ndarray:
    """The mean image of the rows the job trains on (never the held-out ones), by numpy."""
    job = TrainingJob(dataset, SMALL, train, threads=1)
    return dataset.images[job.train_idx].astype(np.float64).mean(0)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, MEAN_EPS, 1 - MEAN_EPS)
    return np.log(p / (1 - p))


def test_the_default_starts_the_mlps_output_at_the_training_images_mean_per_pixel():
    digits = load_digits()
    job = TrainingJob(digits, SMALL, QUICK, threads=1)
    assert QUICK.output_bias == "data-mean" == TrainConfig().output_bias
    bias = job.model.decoder.net[-1].bias.detach().numpy()
    np.testing.assert_allclose(bias, logit(train_mean(digits, QUICK)).reshape(-1), atol=1e-4)  # float32 logit
    torch_init = build_model(SMALL, QUICK.seed)  # everything else is torch's, from the same seed
    for (name, got), (_, want) in zip(job.model.named_parameters(), torch_init.named_parameters()):
        if name != "decoder.net.2.bias":
            assert torch.equal(got, want), name


def test_an_untrained_model_draws_about_the_mean_image_not_grey():
    """What a user sees before the first step: prior samples near the data's mean (torch's start: ~0.5 everywhere)."""
    digits = load_digits()
    mean = torch.from_numpy(train_mean(digits, QUICK)).float()
    z = torch.randn(256, SMALL.latent_dim, generator=torch.Generator().manual_seed(0))
    errors = {}
    for start in ("data-mean", "torch"):
        model = TrainingJob(digits, SMALL, replace(QUICK, output_bias=start), threads=1).model
        with torch.no_grad():
            errors[start] = float((model.decode_mean(z) - mean).pow(2).mean())
    assert errors["data-mean"] < 0.2 * errors["torch"], errors


def test_a_gaussian_starts_at_the_mean_itself_and_conv_per_pixel_or_per_channel():
    rng = np.random.default_rng(0)
    images = rng.random((300, 3, 12, 10), dtype=np.float32) * np.array([0.2, 0.5, 0.9], np.float32)[:, None, None]
    rgb = Dataset(images, name="rgb")
    gaussian = TrainingJob(rgb, replace(SMALL, input_shape=(3, 12, 10), likelihood="gaussian"), QUICK, threads=1)
    mean = rgb.images[gaussian.train_idx].astype(np.float64).mean(0)
    np.testing.assert_allclose(gaussian.model.decoder.net[-1].bias.detach().numpy(), mean.reshape(-1), atol=1e-6)
    conv = TrainingJob(rgb, replace(SMALL, input_shape=(3, 12, 10), arch="mlp-conv"), QUICK, threads=1)
    np.testing.assert_allclose(conv.model.decoder.pixel.bias.detach().numpy(), logit(mean), atol=1e-4)
    assert not conv.model.decoder.deconv[-1].bias.any()  # the pixel bias carries the start alone
    saved_before = replace(SMALL, input_shape=(3, 12, 10), arch="mlp-conv", pixel_bias=False)  # one bias per channel
    conv = TrainingJob(rgb, saved_before, QUICK, threads=1)
    bias = conv.model.decoder.deconv[-1].bias.detach().numpy()
    np.testing.assert_allclose(bias, logit(mean.mean(axis=(1, 2))), rtol=1e-5, atol=1e-5)
    assert bias[0] < bias[1] < bias[2]  # the darkest channel starts darkest


def test_torch_keeps_torchs_initialisation():
    job = TrainingJob(load_digits(), SMALL, replace(QUICK, output_bias="torch"), threads=1)
    for got, want in zip(job.model.parameters(), build_model(SMALL, QUICK.seed).parameters()):
        assert torch.equal(got, want)


def test_it_learns_faster_on_the_digits():
    """One epoch from each start, same seed and batches: the held-out −ELBO a user reads after it is lower from the
    mean image (on real MNIST 5k the default recipe ends 3-4 nats better: bench/bench_quality.py)."""
    digits = load_digits()
    ends = {}
    for start in ("data-mean", "torch"):
        job = TrainingJob(digits, SMALL, replace(QUICK, output_bias=start), threads=1)
        job.run()
        ends[start] = job.history()["epochs"][-1]["val_neg_elbo"]
    assert ends["data-mean"] < ends["torch"] - 1.0, ends


def test_a_resumed_run_keeps_its_weights_and_its_setting(tmp_path):
    digits = load_digits()
    first = TrainingJob(digits, SMALL, replace(QUICK, output_bias="torch"), run_dir=tmp_path / "run", threads=1)
    first.run()
    run = load_run(tmp_path / "run", with_optimizer=True)
    assert run.config.train.output_bias == "torch"
    resumed = TrainingJob(digits, SMALL, replace(run.config.train, epochs=2, output_bias="data-mean"), resume=run,
                          threads=1)
    for got, want in zip(resumed.model.parameters(), run.model.parameters()):
        assert torch.equal(got, want)  # resuming never re-initialises


def test_a_run_saved_before_the_setting_reads_as_torch(tmp_path):
    digits = load_digits()
    TrainingJob(digits, SMALL, QUICK, run_dir=tmp_path / "run", threads=1).run()
    path = tmp_path / "run" / "config.json"
    config = json.loads(path.read_text())
    assert config["train"].pop("output_bias") == "data-mean"
    path.write_text(json.dumps(config))
    assert load_run(tmp_path / "run").config.train.output_bias == "torch"


def test_an_unknown_start_is_refused_by_name():
    with pytest.raises(ValueError, match="output_bias must be one of .*'zeros'"):
        TrainConfig(output_bias="zeros")


def test_the_recipe_starts_at_the_mean_and_says_so():
    recipe = recipe_for((1, 28, 28), 5000)
    assert recipe.output_bias == "data-mean" and "output bias at the mean image" in recipe.summary()


def test_adams_beta2_is_the_configs_and_a_resumed_run_takes_it(tmp_path):
    """Adam's second-moment decay (TrainConfig.adam_beta2; mlp-conv's table entry: 0.99) is the optimizer's, for a new
    run and for a resumed one (its saved param groups are read, then the config's rate and betas applied)."""
    digits = load_digits()
    job = TrainingJob(digits, SMALL, replace(QUICK, adam_beta2=0.99), run_dir=tmp_path / "run", threads=1)
    job.run()
    assert job._opt.param_groups[0]["betas"] == (0.9, 0.99)
    run = load_run(tmp_path / "run", with_optimizer=True)
    assert run.config.train.adam_beta2 == 0.99
    resumed = TrainingJob(digits, SMALL, replace(run.config.train, epochs=2, adam_beta2=0.95), resume=run, threads=1)
    resumed.run()
    assert resumed._opt.param_groups[0]["betas"] == (0.9, 0.95)
    with pytest.raises(ValueError, match="adam_beta2 must be in"):
        TrainConfig(adam_beta2=1.0)
