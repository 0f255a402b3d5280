"""What a run's work costs in memory, priced from its config before any of it is done, against the server's budget.

A run folder of a few kilobytes can describe a model whose weights are small but whose layers are huge (latent_dim
100,000, or a hidden layer of 700,000 units): its weights pass the 2 GiB check of checks.py, yet encoding a dataset
with it needs N × (latent + widest layer) floats. Explore, Compare, `python -m vae_core.evaluate` and a run import
price that work here first — weights, one batch of activations, the codes kept per image, the browser export — and
refuse it with a message naming the budget when it is over. Shapes are followed layer by layer through the
networks' own layer lists (built on the meta device, no tensor made): every architecture of vae_core/architectures.py
is priced by the same code.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from torch import nn

from ..architectures import Crop2d, PixelBias
from ..config import ModelConfig
from .checks import model_skeleton

BUDGET_ENV = "VAE_MEMORY_BUDGET_BYTES"
DEFAULT_BUDGET_BYTES = 2 * 2**30  # per run's work: a 24 GiB, 2-core server keeps room for several sessions at once
ENCODE_BATCH = 1024  # images per batch when a dataset is encoded (vae_core.metrics.encode_dataset's default)
FLOAT_BYTES = 4  # float32 throughout
ACTIVATION_MARGIN = 1.25  # over the widest layer's footprint: the batch itself, the heads' features, the allocator
CODE_COPIES = 5  # mu and logvar per row, held again while the batches are joined, and KL's temporaries
EXPORT_COPIES = 3  # the browser export: the tensors' copies, their joined array and its bytes (vae_core/export.py)


class OverBudget(ValueError):
    """Work refused before it starts: it would need more memory than the budget."""


@dataclass(frozen=True)
class RunCost:
    """Bytes of memory a run's work needs at its peak, by what needs them."""

    weights: int  # the parameters
    activations: int  # one batch through the encoder and the decoder: batch × widest layer × ACTIVATION_MARGIN
    codes: int  # (images + other rows) × latent × CODE_COPIES: mu, logvar and what is computed from them
    export: int  # the networks for the browser (0 when they are not exported)

    @property
    def total(self) -> int:
        return self.weights + self.activations + self.codes + self.export

    def parts(self) -> str:
        """'weights 1.6 MB + activations 2.4 GB + ...', the non-zero parts."""
        named = (("weights", self.weights), ("activations", self.activations), ("codes", self.codes),
                 ("browser export", self.export))
        return " + ".join(f"{name} {human_bytes(n)}" for name, n in named if n)


def human_bytes(n: int) -> str:
    """Bytes in the unit a person reads: 512 B, 1.6 MB, 2.4 GB (powers of 1024, as the limits are set)."""
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def memory_budget() -> int:
    """The most memory one run's work may take: $VAE_MEMORY_BUDGET_BYTES, else DEFAULT_BUDGET_BYTES."""
    text = os.environ.get(BUDGET_ENV, "").strip()
    if not text:
        return DEFAULT_BUDGET_BYTES
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value <= 0:
        raise ValueError(f"{BUDGET_ENV} must be a positive number of bytes (e.g. 4e9), got {text!r}")
    return value


def widest_layer(model: nn.Module, config: ModelConfig) -> int:
    """The most floats one image holds at once at any layer of the encoder or the decoder: the layer's input, its
    output and, for a convolution, its unfolded patches. Followed shape by shape from the image (and from z) through
    the networks' own layer lists (`as_sequential`, the encoder's heads), with no tensor made: a forward pass on the
    meta device gave the same numbers but cost a second per process (it imports torch._dynamo)."""
    sizes = [config.input_size + config.latent_dim]
    features = _follow(model.encoder.as_sequential(), tuple(config.input_shape), sizes)
    for head in (model.encoder.mu, model.encoder.logvar):
        _follow(head, features, sizes)
    _follow(model.decoder.as_sequential(), (config.latent_dim,), sizes)
    return max(sizes)


def _follow(network: nn.Module, shape: tuple[int, ...], sizes: list[int]) -> tuple[int, ...]:
    """One sample's shape through the network's layers in order (its leaf modules), each layer's floats appended to
    sizes; the shape it gives."""
    for layer in (m for m in network.modules() if not list(m.children())):
        out = _output_shape(layer, shape)
        sizes.append(math.prod(shape) + math.prod(out) + _unfolded(layer, shape, out))
        shape = out
    return shape


def _conv_sides(layer: nn.Conv2d | nn.ConvTranspose2d, shape: tuple[int, ...]) -> tuple[int, int]:
    """A convolution's output (H, W) for an input of (C, H, W), as torch computes it."""
    sides = []
    for i, side in enumerate(shape[1:]):
        k, s, p, d = layer.kernel_size[i], layer.stride[i], layer.padding[i], layer.dilation[i]
        if isinstance(layer, nn.ConvTranspose2d):
            sides.append((side - 1) * s - 2 * p + d * (k - 1) + layer.output_padding[i] + 1)
        else:
            sides.append((side + 2 * p - d * (k - 1) - 1) // s + 1)
    return sides[0], sides[1]


def _output_shape(layer: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape one sample of `shape` has after the layer: every leaf module the architectures and the imported
    layer lists (vae_core/layers.py) build; any other is refused."""
    if isinstance(layer, (nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, PixelBias)):
        return shape
    if isinstance(layer, nn.Linear):
        return (*shape[:-1], layer.out_features)
    if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
        return (layer.out_channels, *_conv_sides(layer, shape))
    if isinstance(layer, nn.Flatten) and layer.start_dim == 1 and layer.end_dim == -1:
        return (math.prod(shape),)
    if isinstance(layer, nn.Unflatten) and layer.dim == 1:
        return (*layer.unflattened_size, *shape[1:])
    if isinstance(layer, nn.ZeroPad2d):
        left, right, top, bottom = layer.padding
        return (*shape[:-2], shape[-2] + top + bottom, shape[-1] + left + right)
    if isinstance(layer, Crop2d):
        rows = range(shape[-2])[layer.top:layer.top + layer.height]  # what the slice keeps
        cols = range(shape[-1])[layer.left:layer.left + layer.width]
        return (*shape[:-2], len(rows), len(cols))
    raise ValueError(f"the memory budget cannot follow a {type(layer).__name__} layer's shapes")


def _unfolded(layer: nn.Module, x: tuple[int, ...], y: tuple[int, ...]) -> int:
    """The patches a convolution unfolds per image (im2col): each output position's inputs for a Conv2d, each input
    position's outputs for a ConvTranspose2d; 0 for other layers. x and y: one sample's (C, H, W) in and out."""
    if isinstance(layer, nn.ConvTranspose2d):
        return layer.out_channels * math.prod(layer.kernel_size) * math.prod(x[1:])
    if isinstance(layer, nn.Conv2d):
        return layer.in_channels // layer.groups * math.prod(layer.kernel_size) * math.prod(y[1:])
    return 0


def price(config: ModelConfig, n_images: int, extra_rows: int = 0, export: bool = False,
          batch: int | None = None) -> RunCost:
    """The memory of encoding n_images with the model config describes, batch rows at a time (default: up to
    ENCODE_BATCH images), keeping mu and logvar per image plus extra_rows more latent codes (Explore's draws from
    q(z), IWAE's samples), and of exporting the networks for the browser when export is true. Raises ValueError when
    the config describes no buildable model or weights over checks.py's limit."""
    model = model_skeleton(config)
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    rows = max(1, min(n_images, ENCODE_BATCH) if batch is None else batch)
    return RunCost(weights=weights,
                   activations=int(rows * widest_layer(model, config) * FLOAT_BYTES * ACTIVATION_MARGIN),
                   codes=(n_images + extra_rows) * config.latent_dim * FLOAT_BYTES * CODE_COPIES,
                   export=weights * EXPORT_COPIES if export else 0)


def check_budget(cost: RunCost, what: str, budget: int | None = None) -> None:
    """Refuse (OverBudget, a ValueError) work whose cost is over the budget, saying what it would need and why."""
    budget = memory_budget() if budget is None else budget
    if cost.total > budget:
        raise OverBudget(f"{what} would need about {human_bytes(cost.total)} of memory ({cost.parts()}), over this "
                         f"server's budget of {human_bytes(budget)} per run ({BUDGET_ENV})")
