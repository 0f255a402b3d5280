"""The architecture family, declared once: per name, how its encoder and decoder are built, which image shapes it
accepts, and a one-line description (the Train form's help).

Every encoder lists x -> features as one `nn.Sequential` (`as_sequential`) then has two linear heads `mu` and
`logvar`; every decoder ends without an activation (the likelihood, vae_core/likelihoods.py, turns its output into
p(x|z)) and lists its forward pass as one `nn.Sequential` (`as_sequential`); vae_core/export.py translates both for
the browser. A convolutional network pads its input to its stride's multiple and its decoder crops the output back
to the image's (C, H, W), so the likelihood sees the real pixels only. "onnx" is a network imported from ONNX files
(vae_core/onnx_import.py), built from the layer list its config carries (vae_core/layers.py): the engine explores it
but never trains it (`trainable`). Every trainable decoder can start its output layer's bias at the training images'
mean (`start_at_mean`, TrainConfig.output_bias). Adding an architecture touches this table, its modules here and its test
(tests/test_model.py iterates the table)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from .layers import LayerDecoder, LayerEncoder

Shape = tuple[int, int, int]  # (C, H, W)
ParamsOfMean = Callable[[torch.Tensor], torch.Tensor]  # the likelihood's decoder output for a mean image


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

    def as_sequential(self) -> nn.Sequential:
        """x -> the features the heads read (for the export)."""
        return self.body


class MLPDecoder(nn.Module):
    """z -> hidden layers (reversed) -> pixels; ends in a Linear layer, never a ReLU: the likelihood is applied later."""

    def __init__(self, input_shape: Shape, latent_dim: int, hidden_sizes: tuple[int, ...]):
        super().__init__()
        c, h, w = input_shape
        self.shape = input_shape
        self.net = _mlp([latent_dim, *reversed(hidden_sizes), c * h * w])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.shape)  # (B, C, H, W)

    def start_at_mean(self, mean: torch.Tensor, params_of_mean: ParamsOfMean) -> None:
        """The output layer's bias (one per pixel) set where the likelihood's mean is the image `mean` (C, H, W)."""
        with torch.no_grad():
            self.net[-1].bias.copy_(params_of_mean(mean).reshape(-1))

    def as_sequential(self) -> nn.Sequential:
        """The forward pass as one Sequential of this decoder's own layers (for the export)."""
        return nn.Sequential(self.net, nn.Unflatten(1, self.shape))


def _padding(side: int, multiple: int) -> tuple[int, int]:
    """Zero rows (or columns) before and after a side to make it a multiple of `multiple`, split as evenly as
    possible (the extra one after)."""
    extra = -side % multiple
    return extra // 2, extra - extra // 2


class Crop2d(nn.Module):
    """Keeps a (height, width) window of (B, C, H', W') starting at (top, left): the inverse of a zero padding."""

    def __init__(self, top: int, left: int, height: int, width: int):
        super().__init__()
        self.top, self.left, self.height, self.width = top, left, height, width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, self.top:self.top + self.height, self.left:self.left + self.width]

    def extra_repr(self) -> str:
        return f"top={self.top}, left={self.left}, height={self.height}, width={self.width}"


class PixelBias(nn.Module):
    """A bias per output value of a (C, H, W) image: what a conv decoder ends with (its transposed convolutions have
    one bias per channel), as an MLP's last Linear layer has one per pixel."""

    def __init__(self, shape: Shape):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.bias


class PaddedShape:
    """An image shape padded to a multiple of a network's total stride: the convolutions see (C, H', W'), the
    likelihood only the real (C, H, W) (the decoder crops what the encoder padded)."""

    def __init__(self, input_shape: Shape, multiple: int):
        c, h, w = input_shape
        (self.top, bottom), (self.left, right) = _padding(h, multiple), _padding(w, multiple)
        self.shape = input_shape
        self.padded = (c, h + self.top + bottom, w + self.left + right)
        self.sides = (self.left, right, self.top, bottom)  # nn.ZeroPad2d's order

    def pad(self) -> nn.ZeroPad2d:
        return nn.ZeroPad2d(self.sides)

    def crop(self) -> Crop2d:
        _, h, w = self.shape
        return Crop2d(self.top, self.left, h, w)


class ConvEncoder(nn.Module):
    """Zero padding to sides divisible by 4, two stride-2 convolutions (H' -> H'/4), then dense heads."""

    def __init__(self, input_shape: Shape, latent_dim: int, hidden_sizes: tuple[int, ...]):
        super().__init__()
        padded = PaddedShape(input_shape, 4)
        c, h, w = padded.padded
        hidden = hidden_sizes[-1]
        self.pad = padded.pad()  # no weights: a run saved before padding existed loads unchanged
        self.body = nn.Sequential(
            nn.Conv2d(c, 32, 4, stride=2, padding=1), nn.ReLU(),  # (B, 32, H'/2, W'/2)
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),  # (B, 64, H'/4, W'/4)
            nn.Flatten(), nn.Linear(64 * (h // 4) * (w // 4), hidden), nn.ReLU(),
        )
        self.mu = nn.Linear(hidden, latent_dim)
        self.logvar = nn.Linear(hidden, latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(self.pad(x))
        return self.mu(h), self.logvar(h)

    def as_sequential(self) -> nn.Sequential:
        """x -> the features the heads read, as one Sequential of this encoder's own layers (for the export)."""
        return nn.Sequential(self.pad, self.body)


class ConvDecoder(nn.Module):
    """Dense layers to a (c2, H'/4, W'/4) grid, two stride-2 transposed convolutions (c2 -> c1 -> C channels) back
    to (C, H', W'), then the encoder's padding cropped off: the output, and so the likelihood, covers the real pixels
    only; then a bias per output pixel where `pixel_bias` (ModelConfig.pixel_bias: new runs; runs saved before it
    have the transposed convolution's bias per channel only). `channels` (c1, c2): (32, 64) for "conv", (16, 32)
    for "mlp-conv"."""

    def __init__(self, input_shape: Shape, latent_dim: int, hidden_sizes: tuple[int, ...],
                 channels: tuple[int, int] = (32, 64), pixel_bias: bool = False):
        super().__init__()
        padded = PaddedShape(input_shape, 4)
        c, h, w = padded.padded
        c1, c2 = channels
        self.grid = (c2, h // 4, w // 4)
        self.dense = nn.Sequential(
            nn.Linear(latent_dim, hidden_sizes[-1]), nn.ReLU(),
            nn.Linear(hidden_sizes[-1], c2 * (h // 4) * (w // 4)), nn.ReLU(),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.ReLU(),  # (B, c1, H'/2, W'/2)
            nn.ConvTranspose2d(c1, c, 4, stride=2, padding=1),  # (B, C, H', W'), no final activation
        )
        self.crop = padded.crop()  # (B, C, H, W)
        self.pixel = PixelBias(input_shape) if pixel_bias else None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        # channels-last: torch's CPU transposed convolutions run 3-9% faster a training step of mlp-conv so (one
        # thread, batch 64); the same values, in another memory order
        grid = self.dense(z).view(-1, *self.grid).contiguous(memory_format=torch.channels_last)
        x = self.crop(self.deconv(grid))
        return self.pixel(x) if self.pixel is not None else x

    def start_at_mean(self, mean: torch.Tensor, params_of_mean: ParamsOfMean) -> None:
        """The output bias set where the likelihood's mean is the image `mean` (C, H, W): per pixel with a pixel
        bias (the last transposed convolution's then 0), else the last convolution's, at each channel's mean pixel."""
        with torch.no_grad():
            if self.pixel is not None:
                self.pixel.bias.copy_(params_of_mean(mean))
                self.deconv[-1].bias.zero_()
            else:
                self.deconv[-1].bias.copy_(params_of_mean(mean.mean(dim=(1, 2))))

    def as_sequential(self) -> nn.Sequential:
        """The forward pass as one Sequential of this decoder's own layers (for the export)."""
        tail = [self.pixel] if self.pixel is not None else []
        return nn.Sequential(self.dense, nn.Unflatten(1, self.grid), self.deconv, self.crop, *tail)


MIN_SIDE = 8  # the smallest image side a convolutional architecture takes (a 2x2 grid after two stride-2 layers)


def _any_shape(input_shape: Shape) -> None:
    """Every (C, H, W) is accepted."""


def _conv_shape(name: str) -> Callable[[Shape], None]:
    """Any side of at least 8 (padded to a multiple of 4, cropped back): below that the grid has under 2x2 cells."""

    def check(input_shape: Shape) -> None:
        _, h, w = input_shape
        if h < MIN_SIDE or w < MIN_SIDE:
            raise ValueError(f"arch={name!r} needs images of at least {MIN_SIDE}x{MIN_SIDE}, got {h}x{w}")
    return check


def _conv_decoder(channels: tuple[int, int]) -> Callable[[Any], nn.Module]:
    """A ConvDecoder of these channels built from the config's sizes and its pixel_bias."""
    return lambda config: ConvDecoder(config.input_shape, config.latent_dim, config.hidden_sizes, channels,
                                      pixel_bias=config.pixel_bias)


def _sized(module: Callable[[Shape, int, tuple[int, ...]], nn.Module]) -> Callable[[Any], nn.Module]:
    """A network built from the config's sizes (input_shape, latent_dim, hidden_sizes)."""
    return lambda config: module(config.input_shape, config.latent_dim, config.hidden_sizes)


def _listed(module: Callable[[Shape, int, object], nn.Module]) -> Callable[[Any], nn.Module]:
    """A network built from the config's layer list (input_shape, latent_dim, layers)."""
    return lambda config: module(config.input_shape, config.latent_dim, config.layers)


@dataclass(frozen=True)
class Architecture:
    """One member of the family: its modules' constructors, each ModelConfig -> nn.Module (vae_core/config.py imports
    this module, so the type is not named here)."""

    name: str
    description: str  # one line, the Train form's help
    encoder: Callable[[Any], nn.Module]
    decoder: Callable[[Any], nn.Module]
    check_shape: Callable[[Shape], None]  # raises ValueError on an image shape the architecture cannot take
    # the training it does best with under the default schedule, for the recipe (vae_core/recipe.py; None: the
    # recipe's own for the data)
    lr: float | None = None  # peak learning rate at batch_size
    batch_size: int | None = None
    trainable: bool = True  # False: imported networks (ModelConfig.layers), explored but never trained here
    epochs: int | None = None  # the length for a large dataset (a small one still gets the recipe's minimum steps)
    adam_beta2: float | None = None  # Adam's second-moment decay (None: the recipe's, torch's 0.999)
    # its place when a weak model's remedy suggests another architecture (lowest first; None: never suggested): by
    # held-out −ELBO on real digits (bench/bench_conv.py; issue 22): mlp-conv ~3 nats better than the MLP, the
    # 32/64-channel conv ~10 nats worse
    suggest_rank: int | None = None


_BY_NAME: dict[str, Architecture] = {entry.name: entry for entry in (
    Architecture("mlp", "fully connected layers, any image size", _sized(MLPEncoder), _sized(MLPDecoder), _any_shape,
                 suggest_rank=1),
    Architecture("conv", "two stride-2 convolutions each way; any image of at least 8×8 (padded to sides divisible "
                 "by 4, the output cropped back)",
                 _sized(ConvEncoder), _conv_decoder((32, 64)), _conv_shape("conv"), suggest_rank=2),
    # bench/bench_conv.py, real MNIST 5k, 3 seeds, each output bias starting at the mean image (a bias per pixel):
    # batch 64 at 5e-3 with Adam's beta2 0.99 for 11 epochs ends 3.2 nats better than the default MLP at 1.9x its
    # CPU time (README's conv paragraph has the figures and what was tried); at batch 256 (fewer, larger steps) it
    # ends worse than the MLP. Its transposed convolutions cost more per image than the whole MLP (memory-bound
    # kernels with few channels)
    Architecture("mlp-conv", "an MLP encoder and a light convolutional decoder (16/32 channels); any image of at "
                 "least 8×8; trains best at batch 64, lr 5e-3, Adam β₂ 0.99", _sized(MLPEncoder),
                 _conv_decoder((16, 32)), _conv_shape("mlp-conv"), lr=5e-3, batch_size=64, epochs=11,
                 adam_beta2=0.99, suggest_rank=0),
    Architecture("onnx", "a network imported from ONNX files (python -m vae_core.import_onnx): explored, not trained",
                 _listed(LayerEncoder), _listed(LayerDecoder), _any_shape, trainable=False),
)}
ARCHS: tuple[str, ...] = tuple(n for n, a in _BY_NAME.items() if a.trainable)  # the CLI's and Train form's choices
IMPORTED_ARCH: str = "onnx"  # what vae_core/onnx_import.py writes
DEFAULT_ARCH: str = "mlp"  # what ModelConfig uses unless told otherwise


def architecture(name: str) -> Architecture:
    """The architecture called `name`; an unknown name is refused with the known ones."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(f"arch must be one of {tuple(_BY_NAME)}, got {name!r}") from None
