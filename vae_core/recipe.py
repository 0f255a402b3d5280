"""The default recipe, declared once: from a dataset's facts (its image shape and number of images, and the share
held out for validation) the settings the Train form and the command line start from — architecture, hidden width,
latent size, batch, learning rate, schedule and warm-up, and a training length that gives a small dataset enough
optimiser steps — with a line that says why. Whatever a user sets wins; everything left out comes from here.

The numbers were chosen on real data (bench/bench_quality.py, one torch thread, 3 seeds, a 2-core machine): on real
MNIST 5k (4,500 / 500) this recipe (256 hidden, 12-D, batch 256, 1e-2 cosine, 30 epochs, the output bias starting at
the mean image) ends at held-out -ELBO 113.2-114.3 against 120.9-123.2 for the pytorch/examples recipe's 20 epochs,
and reaches the examples' final level in 0.29-0.31x of its time (from torch's initialisation: 116.5-118.3 and
0.49-0.51x); with cosine it did not overfit up to 60 epochs (114.2, torch's initialisation), so no early stopping. On
the 200 real face crops its reconstructions' MSE is 0.20-0.26x the mean image's (the old fixed batch 256 gave one
step an epoch, all 30 inside the warm-up: 0.81-0.89x). The rules keep every dataset out of its own warm-up: an epoch has at least MIN_STEPS_PER_EPOCH steps (the
batch halves until it does), training lasts at least MIN_STEPS steps (the epochs grow until it does), and the
learning-rate warm-up is at most WARMUP_SHARE of the steps. An architecture whose table entry
(vae_core/architectures.py) names its own batch, rate or length starts from those instead (mlp-conv: batch 64, lr
3e-3, 20 epochs), under the same rules."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .architectures import ARCHS, DEFAULT_ARCH, architecture
from .data import split_indices

Shape = tuple[int, int, int]  # (C, H, W)

SMALL_IMAGE_PIXELS = 16 * 16  # images up to this many pixels (H x W) get SMALL_LATENT dimensions
SMALL_LATENT, LARGE_LATENT = 8, 12  # 8 for the 8x8 digits (more would mostly collapse); 12 from 28x28 up
HIDDEN = 256  # the MLP's hidden width
BATCH, MIN_BATCH = 256, 16  # the batch for a large dataset; a small one halves it down to MIN_BATCH at most
LR = 1e-2  # the peak rate at BATCH; a smaller batch takes it times sqrt(batch / BATCH) (its gradients are noisier)
LR_SCHEDULE = "cosine"  # to 0 at the last step: the end of training is the best model, not a noisy one
LR_WARMUP_STEPS = 100  # the learning-rate warm-up for a long run ...
WARMUP_SHARE = 0.1  # ... and at most this share of any run's steps
OUTPUT_BIAS = "data-mean"  # the decoder's output bias starts at the training images' mean (config.OUTPUT_BIASES)
ADAM_BETA2 = 0.999  # Adam's second-moment decay, torch's default; an architecture's table entry may name its own
EPOCHS = 30  # the training length for a large dataset ...
MIN_STEPS, MIN_STEPS_PER_EPOCH = 300, 6  # ... and what a small one gets at least
MAX_EPOCHS = 2000
LR_GRID = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2, 5e-2)  # the rates a recipe (and the Train form) picks


@dataclass(frozen=True)
class Recipe:
    """The settings a dataset starts from; `why` says in a sentence where they came from."""

    arch: str
    hidden: int
    latent_dim: int
    batch_size: int
    lr: float
    lr_schedule: str
    lr_warmup_steps: int
    output_bias: str
    adam_beta2: float
    epochs: int
    steps: int  # optimiser steps in all: epochs x ceil(training images / batch_size)
    why: str

    def summary(self) -> str:
        """One line: 'mlp, 256 hidden, 12-D latent, batch 256, lr 0.01 cosine (100 warm-up steps), output bias at the
        mean image, 30 epochs = ...'."""
        return (f"{self.arch}, {self.hidden} hidden, {self.latent_dim}-D latent, batch {self.batch_size}, "
                f"lr {self.lr:g} {self.lr_schedule} ({self.lr_warmup_steps} warm-up steps), "
                f"output bias {'at the mean image' if self.output_bias == 'data-mean' else 'as torch starts it'}, "
                + (f"Adam β₂ {self.adam_beta2:g}, " if self.adam_beta2 != ADAM_BETA2 else "")
                + f"{self.epochs} epochs = {self.steps:,} steps")


def default_latent_dim(input_shape: Shape) -> int:
    """SMALL_LATENT dimensions for small images (the bundled 8x8 digits), LARGE_LATENT for larger ones (28x28 and up:
    an 8-D latent limited the held-out -ELBO there and took twice as long to reach a given quality)."""
    _, h, w = input_shape
    return SMALL_LATENT if h * w <= SMALL_IMAGE_PIXELS else LARGE_LATENT


def train_images(n_images: int, val_fraction: float) -> int:
    """How many of n_images train when val_fraction are held out (data.split_indices' split; all of them where that
    split refuses, which training reports itself)."""
    try:
        return max(1, len(split_indices(n_images, val_fraction, seed=0)[0]))
    except ValueError:
        return max(1, n_images)


def grid_lr(lr: float) -> float:
    """The rate of LR_GRID nearest to lr on a log scale (the lower of two as near)."""
    return min(LR_GRID, key=lambda g: (round(abs(math.log(g / lr)), 6), g))


def pick_arch(input_shape: Shape, n_train: int) -> str:
    """The architecture the recipe starts from: the MLP for every dataset. On real 28x28 digits (4,500 training
    images, bench/bench_conv.py) the light conv ("mlp-conv") at its own settings ends ~3.2 nats better in ~1.9x the
    MLP's time — the median of 3 seeds, one seed +2.5: within the seeds' spread of the bar, and the MLP is the
    fastest to a good model; a user who wants the better model picks it (the weak-model remedies suggest it first),
    and the recipe then trains it at its own settings."""
    return architecture(DEFAULT_ARCH).name


def recipe_for(input_shape: Shape, n_images: int, val_fraction: float = 0.1, arch: str | None = None) -> Recipe:
    """The default settings for n_images images of input_shape (C, H, W) with val_fraction held out; arch: a user's
    choice of architecture (None: the recipe's, `pick_arch`). An architecture whose table entry
    (vae_core/architectures.py) names its own rate, batch or length trains at them; the rules below still apply."""
    n_train = train_images(n_images, val_fraction)
    entry = architecture(arch if arch is not None else pick_arch(input_shape, n_train))
    if not entry.trainable:
        raise ValueError(f"arch {entry.name!r} is not trained here (imported networks are explored only); the recipe "
                         f"is for {', '.join(ARCHS)}")
    base_batch, base_lr, base_epochs = entry.batch_size or BATCH, entry.lr or LR, entry.epochs or EPOCHS
    beta2 = entry.adam_beta2 or ADAM_BETA2
    batch = base_batch
    while batch > MIN_BATCH and n_train / batch < MIN_STEPS_PER_EPOCH:
        batch //= 2
    lr = grid_lr(base_lr * math.sqrt(batch / base_batch))
    per_epoch = math.ceil(n_train / batch)
    epochs = min(MAX_EPOCHS, max(base_epochs, math.ceil(MIN_STEPS / per_epoch)))
    steps = epochs * per_epoch
    warmup = min(LR_WARMUP_STEPS, int(WARMUP_SHARE * steps))
    latent = default_latent_dim(input_shape)
    c, h, w = input_shape
    why = [f"{n_train:,} training images of {c}×{h}×{w}"]
    own = [f"{label} {value:g}" for label, value in (("batch", entry.batch_size), ("lr", entry.lr),
                                                      ("epochs", entry.epochs), ("Adam β₂", entry.adam_beta2))
           if value is not None]
    if own:
        why.append(f"{entry.name} trains at its own {', '.join(own)} (vae_core/architectures.py)")
    if batch < base_batch:
        why.append(f"batch {batch} so that an epoch has ≥ {MIN_STEPS_PER_EPOCH} steps, lr scaled to it")
    if epochs > base_epochs:
        why.append(f"{epochs} epochs for ≥ {MIN_STEPS} steps")
    why.append(f"{latent}-D latent for {'small' if latent == SMALL_LATENT else 'larger'} images")
    return Recipe(arch=entry.name, hidden=HIDDEN, latent_dim=latent, batch_size=batch, lr=lr,
                  lr_schedule=LR_SCHEDULE, lr_warmup_steps=warmup, output_bias=OUTPUT_BIAS, adam_beta2=beta2, epochs=epochs, steps=steps,
                  why="; ".join(why) + ".")
