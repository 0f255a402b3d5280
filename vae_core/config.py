"""The settings saved with every run: they rebuild the model and describe how it was trained."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .architectures import DEFAULT_ARCH, architecture
from .likelihoods import DEFAULT_LIKELIHOOD, likelihood
from .recipe import ADAM_BETA2, BATCH, EPOCHS, LR, LR_SCHEDULE, LR_WARMUP_STEPS, OUTPUT_BIAS

LR_SCHEDULES = ("constant", "cosine")
# where the decoder's output bias starts: "data-mean" where E[x|z] is the training images' mean image (VAE.start_output_at);
# "torch": torch's own initialisation (as pytorch/examples and every run saved before this setting)
OUTPUT_BIASES = ("data-mean", "torch")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a VAE's modules before loading its weights."""

    input_shape: tuple[int, int, int] = (1, 8, 8)  # (C, H, W)
    latent_dim: int = 8
    hidden_sizes: tuple[int, ...] = (256,)  # MLP hidden layers; conv uses hidden_sizes[-1] for its dense layer
    arch: str = DEFAULT_ARCH  # a name in vae_core/architectures.py (ARCHS), which also says the shapes each takes
    likelihood: str = DEFAULT_LIKELIHOOD  # a name in vae_core/likelihoods.py (LIKELIHOODS)
    gaussian_sigma: float = 0.1  # observation std of the likelihood with a fixed sigma
    # a conv decoder ends with a bias per output pixel (C, H, W), as the MLP's last layer has one; runs saved before
    # it read False (one bias per channel, their weights as saved); the MLP's is per pixel either way
    pixel_bias: bool = True
    # an imported network's layer lists (vae_core/layers.py; arch "onnx"), None for the engine's own architectures
    layers: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.input_shape = tuple(int(v) for v in self.input_shape)  # JSON gives lists
        self.hidden_sizes = tuple(int(v) for v in self.hidden_sizes)
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {self.input_shape}")
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f"hidden_sizes must be positive, got {self.hidden_sizes}")
        arch = architecture(self.arch)  # an unknown name raises ValueError listing the known ones
        likelihood(self.likelihood)  # likewise
        arch.check_shape(self.input_shape)
        if (self.layers is None) != arch.trainable:
            raise ValueError(f"arch={self.arch!r} " + ("is built from a layer list (layers)" if not arch.trainable
                                                       else "takes no layer list (layers is for imported networks)"))
        if not self.gaussian_sigma > 0:
            raise ValueError(f"gaussian_sigma must be > 0, got {self.gaussian_sigma}")

    @property
    def input_size(self) -> int:
        c, h, w = self.input_shape
        return c * h * w


@dataclass
class TrainConfig:
    """How a model is trained. The defaults are the recipe's for a large dataset (vae_core/recipe.py); the Train form
    and the command line start from the recipe for their dataset, which trains a small one longer."""

    epochs: int = EPOCHS
    batch_size: int = BATCH
    lr: float = LR  # the peak rate: the schedule scales it
    lr_schedule: str = LR_SCHEDULE  # "constant" | "cosine" (to 0 at the last step of `epochs`)
    lr_warmup_steps: int = LR_WARMUP_STEPS  # linear learning-rate warm-up from ~0 to lr over this many steps
    output_bias: str = OUTPUT_BIAS  # one of OUTPUT_BIASES: where a new model's output bias starts (not on resume)
    adam_beta2: float = ADAM_BETA2  # Adam's second-moment decay (its first stays 0.9)
    beta: float = 1.0  # weight of the KL term; 1 is the true ELBO
    warmup_steps: int = 0  # linear KL warm-up: beta ramps 0 -> beta over this many steps
    free_bits: float = 0.0  # nats per latent dimension below which KL is not penalised (Kingma et al. 2016)
    seed: int = 0
    val_fraction: float = 0.1  # 0: train on every image, no per-epoch validation (evaluate on a file instead)
    log_every: int = 1  # record a history row every k steps
    device: str = "cpu"

    def __post_init__(self) -> None:
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.lr > 0, "lr must be > 0"),
            (self.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}"),
            (self.lr_warmup_steps >= 0, "lr_warmup_steps must be >= 0"),
            (0.0 < self.adam_beta2 < 1.0, "adam_beta2 must be in (0, 1)"),
            (self.output_bias in OUTPUT_BIASES,
             f"output_bias must be one of {OUTPUT_BIASES}, got {self.output_bias!r}"),
            (self.beta >= 0, "beta must be >= 0"),
            (self.warmup_steps >= 0, "warmup_steps must be >= 0"),
            (self.free_bits >= 0, "free_bits must be >= 0"),
            (0 <= self.val_fraction < 1, "val_fraction must be in [0, 1) (0: no validation split)"),
            (self.log_every >= 1, "log_every must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass."""
    return dataclasses.asdict(config)


def from_dict(cls: type, data: dict[str, Any]):
    """Rebuild a config dataclass, refusing unknown keys with a clear error."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{cls.__name__} has unknown keys: {sorted(unknown)}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ValueError(f"{cls.__name__}: {exc}") from None


@dataclass
class RunConfig:
    """What config.json holds: the model, the training and the dataset it was trained on."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    dataset: dict[str, Any] = field(default_factory=dict)  # data.Dataset.source plus its "name"

    @property
    def data_source(self) -> dict[str, Any] | str:
        """What data.load_source takes to rebuild the training data ("digits" when unknown)."""
        return {k: v for k, v in self.dataset.items() if k != "name"} or "digits"
