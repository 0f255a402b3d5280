"""The weak-model diagnosis on real models: real faces trained inside the learning-rate warm-up give the mean image
and are flagged, and its remedy cures them; real digits squeezed by a large β collapse; the bundled digits model and a
default model trained on real digits are not flagged."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.real_data import lfw_faces, mnist_5k
from vae_core.config import ModelConfig, TrainConfig
from vae_core.data import Dataset, load_source, preview_indices, split_indices
from vae_core.diagnosis import (STILL_FALLING_NATS, WEAK_RECON_RATIO, diagnose, diagnose_run, kl_remedies,
                                recon_mse_ratio)
from vae_core.jobs import TrainingJob
from vae_core.metrics import KL_COLLAPSE_NATS, encode_dataset
from vae_core.runs import load_run

BUNDLED = Path(__file__).resolve().parent.parent / "assets" / "runs" / "digits-default"


def train(dataset: Dataset, model: ModelConfig, config: TrainConfig) -> TrainingJob:
    return TrainingJob(dataset, model, config, threads=1).run()


def held_out(dataset: Dataset, config: TrainConfig) -> tuple[np.ndarray, int]:
    shown, _ = preview_indices(dataset.n, config.val_fraction, config.seed)
    return dataset.batch(shown), len(split_indices(dataset.n, config.val_fraction, config.seed)[0])


def diagnosis_of(job: TrainingJob):
    images, n_train = held_out(job.dataset, job.train_config)
    return diagnose(job.model, job.train_config, images, job.history(), n_train, finished=job.state == "finished")


@pytest.fixture(scope="module")
def faces() -> Dataset:
    return Dataset(lfw_faces()[:, None].astype(np.float32), name="lfw-faces")  # 200 real 25x25 crops


@pytest.fixture(scope="module")
def digits() -> Dataset:
    images, labels = mnist_5k()
    return Dataset((images[:, None] / 255).astype(np.float32), labels=labels, name="mnist-5k")


def test_the_ratio_is_the_reconstructions_mse_over_the_mean_images():
    run = load_run(BUNDLED)
    x = load_source("digits").batch(np.arange(300))
    with torch.no_grad():
        recon = run.model.decode_mean(run.model.encode(torch.from_numpy(x))[0]).numpy()
    expected = ((recon - x) ** 2).mean() / ((x - x.mean(0)) ** 2).mean()
    assert recon_mse_ratio(run.model, x) == pytest.approx(expected, rel=1e-5)
    mu = encode_dataset(run.model, x, batch_size=128)[0]  # the posterior means diagnose() encodes once
    assert recon_mse_ratio(run.model, x, mu) == pytest.approx(expected, rel=1e-5)
    assert recon_mse_ratio(run.model, np.repeat(x[:1], 4, axis=0)) == 0.0  # identical images: nothing to beat


def test_real_faces_trained_inside_the_warm_up_give_the_mean_image_and_are_flagged(faces):
    """The issue's case: 180 training faces, batch 256, 30 epochs = 30 steps inside the 100-step warm-up, from
    torch's initialisation (the defaults then; from the mean image the reconstructions are that image, ratio ~0.76)."""
    config = TrainConfig(output_bias="torch")
    job = train(faces, ModelConfig(input_shape=faces.shape, latent_dim=12), config)
    found = diagnosis_of(job)
    assert found.recon_ratio > 0.9  # a mean face for every input
    names = {f.name for f in found.findings}
    assert {"mean_image", "warm_up"} <= names and found.weak
    assert found.steps_done == 30
    longer = next(r for r in found.remedies if r.name == "longer")
    assert longer.settings == {"epochs": 500}  # 5 warm-ups of steps at 1 step an epoch
    others = {r.name: r.settings for r in found.remedies}
    fields = set(ModelConfig.__dataclass_fields__) | set(TrainConfig.__dataclass_fields__)
    assert all(set(settings) <= fields for settings in others.values())  # each a change of config fields
    assert others["likelihood"] == {"likelihood": "gaussian-learned"}  # the grey faces under a Bernoulli
    assert others["arch"] == {"arch": "mlp-conv"}  # the one that ends best on real digits (conv ends worse there)

    cured = train(faces, ModelConfig(input_shape=faces.shape, latent_dim=12),
                  TrainConfig(**{**config.__dict__, **longer.settings}))  # the remedy, clicked
    after = diagnosis_of(cured)
    assert after.recon_ratio < 0.5 and not after.weak, after.findings


def test_real_digits_under_a_large_beta_collapse_and_get_the_kl_remedies(digits):
    config = TrainConfig(epochs=3, beta=16.0)  # every dimension under KL_COLLAPSE_NATS (beta 8: about half)
    job = train(digits, ModelConfig(input_shape=digits.shape, latent_dim=12), config)
    found = diagnosis_of(job)
    collapsed = next(f for f in found.findings if f.name == "collapsed")
    assert sum(k < KL_COLLAPSE_NATS for k in found.kl_per_dim) > 6
    assert [r.name for r in collapsed.remedies] == ["kl_warmup", "free_bits", "beta"]
    assert collapsed.remedies[2].settings == {"beta": 8.0}


def test_the_bundled_digits_model_is_not_weak():
    run = load_run(BUNDLED)
    found = diagnose_run(run, load_source("digits"))
    assert found.recon_ratio < WEAK_RECON_RATIO - 0.2 and not found.weak, found.findings
    assert found.epochs_done == 40 and found.steps_done == 520


@pytest.mark.slow  # 30 epochs of 4,500 digits
def test_a_default_model_on_real_digits_is_not_weak(digits):
    """The default recipe, 30 epochs on 4,500 real digits: its cosine schedule ends flat, its reconstructions
    far better than the mean digit."""
    job = train(digits, ModelConfig(input_shape=digits.shape, latent_dim=12), TrainConfig())
    found = diagnosis_of(job)
    assert found.recon_ratio < 0.4 and not found.weak, found.findings


def test_a_stopped_run_and_a_still_falling_curve_are_early_endings():
    run = load_run(BUNDLED)
    images, n_train = held_out(load_source("digits"), run.config.train)
    epochs = [dict(r, val_neg_elbo=25.0) for r in run.history["epochs"][:10]]  # flat: only the stop is early
    found = diagnose(run.model, run.config.train, images, {"epochs": epochs, "steps": []}, n_train, finished=False)
    stopped = next(f for f in found.findings if f.name == "stopped")
    assert "10 of 40 epochs" in stopped.message and stopped.remedies[0].settings == {"epochs": 40}
    pixels = run.config.model.input_size
    falling = [dict(r, val_neg_elbo=30.0 - 2 * STILL_FALLING_NATS * pixels * i) for i, r in enumerate(epochs)]
    flat = [dict(r, val_neg_elbo=30.0 - 0.5 * STILL_FALLING_NATS * pixels * i) for i, r in enumerate(epochs)]
    assert "still_falling" in {f.name for f in diagnose(run.model, run.config.train, images, {"epochs": falling},
                                                         n_train).findings}
    assert not diagnose(run.model, run.config.train, images, {"epochs": flat}, n_train).weak


def test_kl_remedies_are_concrete_settings():
    warmup, free_bits, beta = kl_remedies(TrainConfig(epochs=30, batch_size=100, beta=1.0), n_train=1000)
    assert warmup.settings == {"warmup_steps": 100}  # the first third of 300 steps
    assert kl_remedies(TrainConfig(epochs=3, batch_size=100), n_train=1000)[0].settings == {"warmup_steps": 50}
    assert free_bits.settings == {"free_bits": 0.25} and beta.settings == {"beta": 0.5}


@pytest.mark.parametrize("arch, shape, suggested", [
    ("mlp", (1, 28, 28), "mlp-conv"), ("conv", (1, 28, 28), "mlp-conv"), ("mlp-conv", (1, 28, 28), "mlp"),
    ("mlp", (1, 4, 4), None),  # below 8x8 no convolutional architecture takes the images
])
def test_the_architecture_suggested_is_the_best_ranked_other_that_takes_the_images(arch, shape, suggested):
    from vae_core.diagnosis import _other_arch

    remedy = _other_arch(ModelConfig(input_shape=shape, latent_dim=4, hidden_sizes=(8,), arch=arch))
    assert (remedy and remedy.settings) == ({"arch": suggested} if suggested else None)
