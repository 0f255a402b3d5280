"""VAEs as people write them elsewhere, exported with torch.onnx.export, for the ONNX import's tests (engine and
browser): the pytorch/examples MLP VAE (784-400-20, fc21/fc22 for mu and the log-variance, a Sigmoid decoder) and
a course-style conv VAE (strided convolutions, LeakyReLU, `x.view(x.size(0), -1)`, one encoder output `chunk`ed
into mu and the log-variance, transposed convolutions with an output_padding, a Tanh and a final Sigmoid)."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class ExamplesVAE(nn.Module):
    """pytorch/examples vae/main.py's model."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x.view(-1, 784)))
        return self.fc21(h1), self.fc22(h1)

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))


class ConvVAE(nn.Module):
    """A conv VAE for 1x28x28 images with a 6-d latent."""

    def __init__(self, latent: int = 6):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, 8, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU())
        self.fc = nn.Linear(16 * 7 * 7, 2 * latent)
        self.dec_fc = nn.Linear(latent, 16 * 7 * 7)
        self.dec = nn.Sequential(nn.ConvTranspose2d(16, 8, 3, 2, 1, output_padding=1), nn.Tanh(),
                                 nn.ConvTranspose2d(8, 1, 4, 2, 1))

    def encode(self, x):
        h = self.enc(x)
        return self.fc(h.view(h.size(0), -1)).chunk(2, dim=1)

    def decode(self, z):
        h = F.relu(self.dec_fc(z)).view(-1, 16, 7, 7)
        return torch.sigmoid(self.dec(h))


class _Part(nn.Module):
    """One of a VAE's halves as the module torch.onnx.export takes."""

    def __init__(self, model: nn.Module, method: str):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, x):
        return getattr(self.model, self.method)(x)


def seeded(cls, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = cls().eval()
    with torch.no_grad():  # spread the decoder's outputs (untrained biases sit near 0.5 after the sigmoid)
        for p in model.parameters():
            p.mul_(1.5)
    return model


def export_vae(model: nn.Module, folder: Path, latent: int, dynamo: bool = False,
               shape: tuple[int, int, int] = (1, 28, 28)) -> tuple[Path, Path]:
    """The encoder and decoder of images of `shape` as two ONNX files with a dynamic batch: (encoder, decoder)."""
    enc, dec = folder / "encoder.onnx", folder / "decoder.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for part, sample, path, name in ((_Part(model, "encode"), torch.rand(2, *shape), enc, "x"),
                                         (_Part(model, "decode"), torch.randn(2, latent), dec, "z")):
            if dynamo:
                torch.onnx.export(part, (sample,), path, dynamo=True, input_names=[name], external_data=False,
                                  dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
            else:
                torch.onnx.export(part, (sample,), path, dynamo=False, input_names=[name],
                                  dynamic_axes={name: {0: "batch"}})
    return enc, dec


class PaddedVAE(nn.Module):
    """What other exports bring: a zero padding (uneven), a flatten, a bias added after a plain matmul, a 2-D latent
    from one linear layer split by hand (torch.split), and a decoder without a final Sigmoid (its output: logits)."""

    def __init__(self, latent: int = 2):
        super().__init__()
        self.pad = nn.ZeroPad2d((1, 2, 0, 1))
        self.conv = nn.Conv2d(1, 4, 5, stride=2)
        self.head = nn.Linear(4 * 13 * 14, 2 * latent)
        self.weight = nn.Parameter(torch.randn(latent, 28 * 28) * 0.1)
        self.bias = nn.Parameter(torch.randn(28 * 28) * 0.1)

    def encode(self, x):
        h = torch.flatten(F.leaky_relu(self.conv(self.pad(x))), 1)
        return torch.split(self.head(h), self.head.out_features // 2, dim=1)

    def decode(self, z):
        return (self.bias + torch.matmul(z, self.weight)).view(-1, 1, 28, 28)
