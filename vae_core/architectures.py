"""The architecture family, declared once: per name, how its encoder and decoder are built, which image shapes it
accepts, and a one-line description (the Train form's help).

Every encoder is `body` (x -> features) then two linear heads `mu` and `logvar`; every decoder ends without an
activation (the likelihood, vae_core/likelihoods.py, turns its output into p(x|z)) and lists its forward pass as
one `nn.Sequential` (`as_sequential`), which vae_core/export.py translates for the browser. Adding an architecture
touches this table, its modules here and its test (tests/test_model.py iterates the table)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

Shape = tuple[int, int, int]  # (C, H, W)


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    def __init__(self, input_shape: Shape, latent_dim: int, hidden_sizes: tuple[int, ...]):
        super().__init__()
        c, h, w = input_shape
        self.body = nn.Sequential(nn.Flatten(), _mlp([c * h * w, *hidden_sizes]), nn.ReLU())
        self.mu = nn.Linear(hidden_sizes[-1], latent_dim)
        self.logvar = nn.Linear(hidden_sizes[-1], latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)  # (B, H)
        return self.mu(h), self.logvar(h)


class MLPDecoder(nn.Module):
    """z -> hidden layers (reversed) -> pixels; ends in a Linear layer, never a ReLU: the likelihood is applied later."""

    def __init__(self, input_shape: Shape, latent_dim: int, hidden_sizes: tuple[int, ...]):
        super().__init__()
        c, h, w = input_shape
        self.shape = input_shape
        self.net = _mlp([latent_dim, *reversed(hidden_sizes), c * h * w])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.shape)  # (B, C, H, W)

    def as_sequential(self) -> nn.Sequential:
        """The forward pass as one Sequential of this decoder's own layers (for the export)."""
        return nn.Sequential(self.net, nn.Unflatten(1, self.shape))


class ConvEncoder(nn.Module):
    """Two stride-2 convolutions (H -> H/4), then dense heads."""

    def __init__(self, input_shape: Shape, latent_dim: int, hidden_sizes: tuple[int, ...]):
        super().__init__()
        c, h, w = input_shape
        hidden = hidden_sizes[-1]
        self.body = nn.Sequential(
            nn.Conv2d(c, 32, 4, stride=2, padding=1), nn.ReLU(),  # (B, 32, H/2, W/2)
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),  # (B, 64, H/4, W/4)
            nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), hidden), nn.ReLU(),
        )
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.mu(h), self.logvar(h)


class ConvDecoder(nn.Module):
    """Dense layers to a (64, H/4, W/4) grid, then two stride-2 transposed convolutions back to (C, H, W)."""

    def __init__(self, input_shape: Shape, latent_dim: int, hidden_sizes: tuple[int, ...]):
        super().__init__()
        c, h, w = input_shape
        self.grid = (64, h // 4, w // 4)
        self.dense = nn.Sequential(
            nn.Linear(latent_dim, hidden_sizes[-1]), nn.ReLU(),
            nn.Linear(hidden_sizes[-1], 64 * (h // 4) * (w // 4)), nn.ReLU(),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),  # (B, 32, H/2, W/2)
            nn.ConvTranspose2d(32, c, 4, stride=2, padding=1),  # (B, C, H, W), no final activation
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.dense(z).view(-1, *self.grid))

    def as_sequential(self) -> nn.Sequential:
        """The forward pass as one Sequential of this decoder's own layers (for the export)."""
        return nn.Sequential(self.dense, nn.Unflatten(1, self.grid), self.deconv)


def _any_shape(input_shape: Shape) -> None:
    """Every (C, H, W) is accepted."""


def _conv_shape(input_shape: Shape) -> None:
    """Two stride-2 convolutions halve each side twice and the transposed ones double it back: sides divisible by 4,
    and at least 28 so the grid keeps some space (7x7)."""
    _, h, w = input_shape
    if h < 28 or w < 28 or h % 4 or w % 4:
        raise ValueError(f"arch='conv' needs images of at least 28x28 with sides divisible by 4, got {h}x{w}")


@dataclass(frozen=True)
class Architecture:
    """One member of the family: its modules' constructors (input_shape, latent_dim, hidden_sizes) -> nn.Module."""

    name: str
    description: str  # one line, the Train form's help
    encoder: Callable[[Shape, int, tuple[int, ...]], nn.Module]
    decoder: Callable[[Shape, int, tuple[int, ...]], nn.Module]
    check_shape: Callable[[Shape], None]  # raises ValueError on an image shape the architecture cannot take


_BY_NAME: dict[str, Architecture] = {entry.name: entry for entry in (
    Architecture("mlp", "fully connected layers, any image size", MLPEncoder, MLPDecoder, _any_shape),
    Architecture("conv", "two stride-2 convolutions each way; images of at least 28×28 with sides divisible by 4",
                 ConvEncoder, ConvDecoder, _conv_shape),
)}
ARCHS: tuple[str, ...] = tuple(_BY_NAME)  # the CLI's choices and the Train form's options
DEFAULT_ARCH: str = "mlp"  # what ModelConfig uses unless told otherwise


def architecture(name: str) -> Architecture:
    """The architecture called `name`; an unknown name is refused with the known ones."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(f"arch must be one of {ARCHS}, got {name!r}") from None
