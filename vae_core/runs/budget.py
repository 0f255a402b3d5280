"""What a run's work costs in memory, priced from its config before any of it is done, against the server's budget.

A run folder of a few kilobytes can describe a model whose weights are small but whose layers are huge (latent_dim
100,000, or a hidden layer of 700,000 units): its weights pass the 2 GiB check of checks.py, yet encoding a dataset
with it needs N × (latent + widest layer) floats. Explore, Compare, `python -m vae_core.evaluate` and a run import
price that work here first — weights, one batch of activations, the codes kept per image, the browser export — and
refuse it with a message naming the budget when it is over. Shapes come from a forward pass on the meta device:
nothing is allocated, and every architecture of vae_core/architectures.py is priced by the same code.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

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
    output and, for a convolution, its unfolded patches. Read from a forward pass of one image on the meta device
    (shapes only, nothing allocated), so every architecture is priced by the same code."""
    sizes = [config.input_size + config.latent_dim]

    def record(module: nn.Module, inputs: tuple, output) -> None:
        outputs = output if isinstance(output, tuple) else (output,)
        size = sum(t[0].numel() for t in (*inputs, *outputs) if torch.is_tensor(t))
        sizes.append(size + _unfolded(module, inputs[0], outputs[0]))

    leaves = [m for m in model.modules() if not list(m.children())]
    hooks = [m.register_forward_hook(record) for m in leaves]
    try:
        with torch.no_grad():
            model.encode(torch.empty((1, *config.input_shape), device="meta"))
            model.decode(torch.empty((1, config.latent_dim), device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    return max(sizes)


def _unfolded(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """The patches a convolution unfolds per image (im2col): each output position's inputs for a Conv2d, each input
    position's outputs for a ConvTranspose2d; 0 for other layers."""
    if isinstance(module, nn.ConvTranspose2d):
        return module.out_channels * module.weight[0, 0].numel() * x[0, 0].numel()
    if isinstance(module, nn.Conv2d):
        return module.weight[0].numel() * y[0, 0].numel()
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
