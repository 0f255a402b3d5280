"""Is a trained model weak, and what would help? Findings with their numbers, each with the remedies that apply.

A remedy is a concrete change of training settings, named by the config fields it sets (ModelConfig / TrainConfig:
"epochs", "latent_dim", "arch", "likelihood", "beta", "warmup_steps", "free_bits"); the Train form applies it
in one click (ui/remedies.py). The thresholds were read off real models: a model that decodes the mean image for
every input has an MSE ratio near 1 (200 real faces trained with the defaults, inside the learning-rate warm-up:
0.98; real digits after 1 epoch: 1.1), good ones well below (the bundled digits model 0.42; real digits after 10
epochs 0.38; the faces after 300 epochs 0.20). tests/test_diagnosis.py holds them to it on the faces, the bundled
model and real digits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .architectures import ARCHS, architecture
from .config import ModelConfig, TrainConfig
from .data import Dataset, preview_indices, split_indices
from .likelihoods import DEFAULT_LIKELIHOOD, LIKELIHOODS, likelihood
from .metrics import KL_COLLAPSE_NATS, collapsed_dims, encode_dataset, kl_vanishing
from .model import VAE
from .objective import kl_per_dim
from .runs import Run

WEAK_RECON_RATIO = 0.7  # reconstructions' MSE / the mean image's MSE above this: barely better than the mean image
FALLING_EPOCHS = 3  # the last epochs whose validation -ELBO slope says "still falling"
STILL_FALLING_NATS = 1e-3  # nats per pixel per epoch over those epochs (0.8 nats an epoch on 28x28 images)
WARMUP_MULTIPLE = 5  # "train longer" after a run that ended inside its warm-up: this many warm-ups of steps
MAX_EPOCHS, MAX_LATENT = 10_000, 128  # the Train form's limits
MIN_KL_WARMUP = 50  # steps
MAX_IMAGES = 2000  # held-out images a diagnosis reads at most


@dataclass(frozen=True)
class Remedy:
    """One click's worth of settings: `settings` maps config fields to the values to train with next."""

    name: str  # what kind of change: "longer", "latent", "arch", "likelihood", "kl_warmup", "free_bits", "beta"
    label: str  # the button's text, with the value
    settings: dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class Finding:
    name: str  # "mean_image", "collapsed", "stopped", "warm_up", "still_falling"
    message: str  # one sentence with the numbers
    remedies: tuple[Remedy, ...] = ()


@dataclass(frozen=True)
class Diagnosis:
    recon_ratio: float  # reconstructions' MSE / the images' mean image's MSE (1: the mean image for every input)
    kl_per_dim: tuple[float, ...]  # on the diagnosed images, nats
    epochs_done: int
    steps_done: int
    findings: tuple[Finding, ...]

    @property
    def weak(self) -> bool:
        return bool(self.findings)

    @property
    def remedies(self) -> tuple[Remedy, ...]:
        """Every finding's remedies once each (the first of each name), in the findings' order."""
        seen: dict[str, Remedy] = {}
        for finding in self.findings:
            for remedy in finding.remedies:
                seen.setdefault(remedy.name, remedy)
        return tuple(seen.values())


# --------------------------------------------------------------------------- measurements


@torch.no_grad()
def recon_mse_ratio(model: VAE, images: np.ndarray, mu: np.ndarray | None = None) -> float:
    """MSE of the reconstructions (decoder mean at the posterior mean) over the MSE of the images' own mean image:
    near 1, the model gives the mean image whatever the input; 0, perfect reconstructions. mu: the images' posterior
    means when they are known already (encoded here otherwise)."""
    model.eval()
    x = torch.as_tensor(np.ascontiguousarray(images, dtype=np.float32))  # (N, C, H, W)
    recon = model.decode_mean(model.encode(x)[0] if mu is None else torch.as_tensor(mu))
    mean_image = x.mean(0, keepdim=True)  # (1, C, H, W): the best single image for these inputs
    baseline = (x - mean_image).pow(2).mean().item()
    if baseline == 0:
        return 0.0  # identical images: the mean image is perfect, and so is any model that gives it
    return (recon - x).pow(2).mean().item() / baseline


def _kl_dims(mu: np.ndarray, logvar: np.ndarray) -> list[float]:
    return kl_per_dim(torch.as_tensor(mu), torch.as_tensor(logvar)).mean(0).tolist()


def _val_slope(epochs: list[dict], pixels: int) -> float | None:
    """How fast the validation -ELBO still fell over the last FALLING_EPOCHS epochs, in nats per pixel per epoch."""
    values = [r["val_neg_elbo"] for r in epochs if r.get("val_neg_elbo") is not None][-(FALLING_EPOCHS + 1):]
    if len(values) < 2:
        return None
    return (values[0] - values[-1]) / (len(values) - 1) / pixels


def _steps_done(history: dict) -> int:
    epochs, steps = history.get("epochs", []), history.get("steps", [])
    last = [r["step"] for r in epochs[-1:] + steps[-1:]]  # steps taken (a step row's "step" counts from 1)
    return max(last, default=0)


# --------------------------------------------------------------------------- remedies


def kl_remedies(train: TrainConfig, n_train: int) -> tuple[Remedy, ...]:
    """For KL vanishing: a KL warm-up over the first third of training, free bits, half the β."""
    total = train.epochs * math.ceil(n_train / train.batch_size)
    warmup = max(MIN_KL_WARMUP, int(round(total / 3, -1)))
    beta = round(max(0.01, train.beta / 2), 3)
    return (Remedy("kl_warmup", f"KL warm-up {warmup} steps", {"warmup_steps": warmup}),
            Remedy("free_bits", "Free bits 0.25", {"free_bits": 0.25}),
            Remedy("beta", f"Halve β (→ {beta:g})", {"beta": beta}))


def _longer(epochs: int) -> Remedy:
    epochs = min(MAX_EPOCHS, epochs)
    return Remedy("longer", f"Train {epochs} epochs", {"epochs": epochs})


def _other_arch(model: ModelConfig) -> Remedy | None:
    """The best-ranked other architecture that takes these images (Architecture.suggest_rank)."""
    ranked = sorted((a for a in ARCHS if architecture(a).suggest_rank is not None),
                    key=lambda a: architecture(a).suggest_rank)
    for name in ranked:
        if name == model.arch:
            continue
        try:
            architecture(name).check_shape(model.input_shape)
        except ValueError:
            continue
        return Remedy("arch", f"Architecture {name}", {"arch": name})
    return None


def _other_likelihood(model: ModelConfig) -> Remedy | None:
    """The default likelihood for a model that has another one; for the default, one that learns its noise."""
    if model.likelihood != DEFAULT_LIKELIHOOD:
        name = DEFAULT_LIKELIHOOD
    else:
        name = next((n for n in LIKELIHOODS if likelihood(n).sigma == "learned"), None)
    return None if name is None else Remedy("likelihood", f"Likelihood {name}", {"likelihood": name})


# --------------------------------------------------------------------------- the diagnosis


def diagnose(model: VAE, train: TrainConfig, images: np.ndarray, history: dict, n_train: int,
             finished: bool = True) -> Diagnosis:
    """The findings on a trained model, from its held-out images (N, C, H, W), its history and how it ended."""
    config = model.config
    mu, logvar = encode_dataset(model, images)  # once, for the reconstructions and the KL
    ratio, kl = recon_mse_ratio(model, images, mu), _kl_dims(mu, logvar)
    epochs = history.get("epochs", [])
    steps, per_epoch = _steps_done(history), math.ceil(n_train / train.batch_size)
    warmup = max(train.lr_warmup_steps, train.warmup_steps)
    slope = _val_slope(epochs, config.input_size)
    reasons: list[tuple[str, str, int]] = []  # (finding, message, epochs that would help)
    if not architecture(config.arch).trainable:  # imported: trained elsewhere, no history of its own to read
        finished, steps, warmup, slope = True, 0, 0, None
    if not finished and len(epochs) < train.epochs:
        reasons.append(("stopped", f"Training was stopped after {len(epochs)} of {train.epochs} epochs.",
                        train.epochs))
    if steps < warmup:
        reasons.append(("warm_up", f"Training ended inside its warm-up: {steps} steps ({per_epoch} an epoch) for "
                                   f"a {warmup}-step warm-up, so the learning rate (or β) never reached its value.",
                        math.ceil(WARMUP_MULTIPLE * warmup / per_epoch)))
    if slope is not None and slope > STILL_FALLING_NATS:
        reasons.append(("still_falling", f"The validation −ELBO was still falling by {slope * config.input_size:.1f} "
                                         f"nats an epoch over the last epochs (more than {STILL_FALLING_NATS:g} nats "
                                         "per pixel).", 2 * train.epochs))
    longer = _longer(max((e for *_, e in reasons), default=train.epochs))  # one remedy: the longest that helps
    early = [Finding(name, message, (longer,)) for name, message, _ in reasons]
    findings: list[Finding] = []
    if ratio > WEAK_RECON_RATIO:
        remedies = [longer] if early else []
        if not early and collapsed_dims(kl) == 0:
            remedies.append(Remedy("latent", f"{min(MAX_LATENT, 2 * config.latent_dim)} latent dimensions",
                                   {"latent_dim": min(MAX_LATENT, 2 * config.latent_dim)}))
        remedies += [r for r in (_other_arch(config), _other_likelihood(config)) if r is not None]
        findings.append(Finding(
            "mean_image", f"Reconstructions are barely better than the mean image: their squared error is "
                          f"{ratio:.0%} of the mean image's (above {WEAK_RECON_RATIO:.0%}).", tuple(remedies)))
    if kl_vanishing(kl):
        findings.append(Finding(
            "collapsed", f"{collapsed_dims(kl)} of {len(kl)} latent dimensions collapsed (KL below "
                         f"{KL_COLLAPSE_NATS:g} nats): z says almost nothing about x there.", kl_remedies(train, n_train)))
    return Diagnosis(recon_ratio=ratio, kl_per_dim=tuple(kl), epochs_done=len(epochs), steps_done=steps,
                     findings=tuple(findings + early))


def diagnose_run(run: Run, dataset: Dataset) -> Diagnosis:
    """diagnose() for a saved run on its data: the held-out images of its own split (the training images when it
    kept none), at most MAX_IMAGES of them."""
    train = run.config.train
    shown, _ = preview_indices(dataset.n, train.val_fraction, train.seed)
    train_idx, _ = split_indices(dataset.n, train.val_fraction, train.seed)
    return diagnose(run.model, train, dataset.batch(shown[:MAX_IMAGES]), run.history, len(train_idx),
                    finished=bool(run.state.get("finished", True)))
