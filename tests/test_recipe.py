"""The default recipe (vae_core/recipe.py) for each kind of dataset the issue tried: every one trains past its
learning-rate warm-up, within sane bounds, with the values the Train form can show."""
from __future__ import annotations

import math

import pytest

from vae_core.config import TrainConfig
from vae_core.data import split_indices
from vae_core.objective import lr_factor
from vae_core.architectures import ARCHS, architecture
from vae_core.recipe import BATCH, EPOCHS, LR, LR_GRID, MIN_BATCH, MIN_STEPS, pick_arch, recipe_for

DATASETS = {  # name -> ((C, H, W), number of images)
    "digits 8×8": ((1, 8, 8), 1797),
    "shapes 32×32": ((1, 32, 32), 20_000),
    "real MNIST 5k": ((1, 28, 28), 5000),
    "MNIST 60k": ((1, 28, 28), 60_000),
    "real faces 25×25": ((1, 25, 25), 200),
    "400 faces 23×28": ((1, 28, 23), 400),
    "characters 105×105": ((1, 105, 105), 2720),
    "RGB 64×64": ((3, 64, 64), 1000),
    "a handful of images": ((1, 28, 28), 12),
}


@pytest.mark.parametrize("name", DATASETS)
def test_no_dataset_ends_inside_its_warm_up_and_the_settings_are_sane(name):
    shape, n = DATASETS[name]
    recipe = recipe_for(shape, n, TrainConfig.val_fraction)
    train_idx, _ = split_indices(n, TrainConfig.val_fraction, seed=0)
    total = math.ceil(len(train_idx) / recipe.batch_size) * recipe.epochs  # as the training job counts its steps
    assert recipe.steps == total >= MIN_STEPS
    assert recipe.lr_warmup_steps <= 0.1 * total  # the warm-up is over long before the end ...
    peak_at = max(0, recipe.lr_warmup_steps - 1)
    assert lr_factor(peak_at, total, recipe.lr_schedule, recipe.lr_warmup_steps) > 0.97  # ... the rate then near its peak
    assert 16 <= recipe.batch_size <= BATCH and recipe.batch_size & (recipe.batch_size - 1) == 0  # the form's options
    assert recipe.lr in LR_GRID and recipe.lr <= LR
    assert EPOCHS <= recipe.epochs <= 2000 and recipe.hidden == 256 and recipe.arch == "mlp"
    assert recipe.latent_dim == (8 if shape[1] * shape[2] <= 16 * 16 else 12)
    assert recipe.summary().startswith(f"{recipe.arch}, {recipe.hidden} hidden, {recipe.latent_dim}-D latent")
    assert f"{len(train_idx):,} training images" in recipe.why


def test_the_faces_that_ended_inside_the_warm_up_get_enough_steps():
    """The issue's case: 400 faces, 10% validation, batch 256 gave 2 steps an epoch and 60 steps in 30 epochs, all
    inside a 100-step warm-up. The recipe halves the batch to 32 (12 steps an epoch, the rate scaled to 3e-3): 360
    steps in 30 epochs, 36 of them warming up."""
    old_steps = math.ceil(360 / 256) * 30
    assert old_steps < TrainConfig().lr_warmup_steps  # what went wrong, with the old fixed settings
    recipe = recipe_for((1, 28, 23), 400, 0.1)
    assert (recipe.batch_size, recipe.lr, recipe.epochs, recipe.steps, recipe.lr_warmup_steps) == (32, 3e-3, 30, 360, 36)
    assert "batch 32 so that an epoch has ≥ 6 steps" in recipe.why


def test_the_bundled_digits_train_longer_at_the_same_batch():
    """1,617 training digits at batch 256 are 7 steps an epoch: 43 epochs reach the 300-step minimum."""
    recipe = recipe_for((1, 8, 8), 1797, 0.1)
    assert (recipe.batch_size, recipe.lr, recipe.epochs, recipe.steps, recipe.latent_dim) == (256, 1e-2, 43, 301, 8)
    assert "43 epochs for ≥ 300 steps" in recipe.why


def test_a_large_dataset_keeps_the_settings_that_won_on_it():
    """From 8 steps an epoch and 600 steps up nothing changes: shapes (20k) and MNIST train as before."""
    for shape, n in (DATASETS["shapes 32×32"], DATASETS["MNIST 60k"]):
        recipe = recipe_for(shape, n, 0.1)
        assert (recipe.batch_size, recipe.lr, recipe.epochs, recipe.lr_warmup_steps) == (BATCH, LR, EPOCHS, 100)
    defaults = TrainConfig()  # a config built in code takes the same numbers
    assert (defaults.batch_size, defaults.lr, defaults.epochs) == (BATCH, LR, EPOCHS)


def test_the_validation_share_counts():
    """The steps follow the images that train: with none held out an epoch of the 400 faces has more of them."""
    held_out, everything = recipe_for((1, 28, 23), 400, 0.1), recipe_for((1, 28, 23), 400, 0.0)
    assert "360 training images" in held_out.why and "400 training images" in everything.why
    assert everything.steps == math.ceil(400 / everything.batch_size) * everything.epochs


def test_a_chosen_architecture_trains_at_its_table_entrys_settings():
    """mlp-conv's table entry (vae_core/architectures.py) names batch 64, lr 5e-3, 11 epochs and Adam's beta2 0.99:
    on real MNIST 5k (4,500 training images, 71 steps an epoch) the recipe for it takes them, and its line says so."""
    entry = architecture("mlp-conv")
    recipe = recipe_for((1, 28, 28), 5000, 0.1, arch="mlp-conv")
    assert (recipe.arch, recipe.batch_size, recipe.lr, recipe.epochs, recipe.adam_beta2) == ("mlp-conv", 64, 5e-3, 11,
                                                                                             0.99)
    assert (entry.batch_size, entry.lr, entry.epochs, entry.adam_beta2) == (64, 5e-3, 11, 0.99)
    assert (recipe.steps, recipe.lr_warmup_steps) == (11 * 71, 78)
    assert "mlp-conv trains at its own batch 64, lr 0.005, epochs 11, Adam β₂ 0.99 (vae_core/architectures.py)" in (
        recipe.why)
    assert "Adam β₂ 0.99" in recipe.summary() and "Adam" not in recipe_for((1, 28, 28), 5000, 0.1).summary()
    assert recipe_for((1, 28, 28), 5000, 0.1, arch="mlp") == recipe_for((1, 28, 28), 5000, 0.1)  # no own settings


def test_an_architectures_own_settings_follow_the_rules_for_a_small_dataset():
    """The 400 faces with mlp-conv: its batch 64 halves to 32 (12 steps an epoch), its rate scaled by sqrt(1/2) to the
    grid's 3e-3, and 25 epochs (not its 11) for 300 steps."""
    recipe = recipe_for((1, 28, 23), 400, 0.1, arch="mlp-conv")
    assert (recipe.batch_size, recipe.lr, recipe.epochs, recipe.steps, recipe.lr_warmup_steps) == (32, 3e-3, 25, 300, 30)
    assert "batch 32 so that an epoch has ≥ 6 steps" in recipe.why and "25 epochs for ≥ 300 steps" in recipe.why


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", DATASETS)
def test_no_architecture_ends_inside_its_warm_up(name, arch):
    shape, n = DATASETS[name]
    recipe = recipe_for(shape, n, TrainConfig.val_fraction, arch=arch)
    entry = architecture(arch)
    assert recipe.arch == arch and recipe.steps >= MIN_STEPS and recipe.lr_warmup_steps <= 0.1 * recipe.steps
    assert MIN_BATCH <= recipe.batch_size <= (entry.batch_size or BATCH) and recipe.lr <= (entry.lr or LR)
    assert recipe.epochs >= (entry.epochs or EPOCHS)


def test_the_recipe_picks_the_mlp_and_refuses_an_unknown_architecture():
    """No conv design tried beat the MLP by 3 nats within 2x its time on real digits (bench/bench_conv.py): the
    recipe starts every dataset, real 28x28 digits included, from the MLP."""
    assert all(pick_arch(shape, n) == "mlp" for shape, n in DATASETS.values())
    with pytest.raises(ValueError, match=r"arch 'onnx' is not trained here"):
        recipe_for((1, 28, 28), 5000, arch="onnx")
    with pytest.raises(ValueError, match=r"arch must be one of \('mlp', 'conv', 'mlp-conv', 'onnx'\), got 'resnet'"):
        recipe_for((1, 28, 28), 5000, 0.1, arch="resnet")
