"""A network given as a list of layers (JSON, saved in config.json as ModelConfig.layers) built into torch modules:
how an imported model (vae_core/onnx_import.py) becomes the engine's own encoder and decoder.

One layer is a small dict; its tensors are the module's own parameters, saved in model.safetensors like any run's:

    {"op": "linear", "in": 400, "out": 20}
    {"op": "conv2d" | "conv_transpose2d", "in_ch", "out_ch", "kernel", "stride", "padding"[, "output_padding"]}
    {"op": "relu"} | {"op": "leaky_relu", "slope": 0.2} | {"op": "sigmoid"} | {"op": "tanh"}
    {"op": "flatten"} | {"op": "reshape", "shape": [64, 7, 7]}          per sample, (C, H, W) order
    {"op": "pad", "sides": [left, right, top, bottom]}                  zeros around (C, H, W)

The spec is untrusted input (a run folder may come from anyone): every field is checked and every layer's input
shape is followed from the image (or z) on, so a layer that cannot take what the previous one gives is refused with
its position. The modules are the ones vae_core/export.py translates for the browser (`as_sequential`)."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

Shape = tuple[int, ...]  # one sample's shape
MAX_LAYERS = 256
MAX_SIZE = 2**31  # any one size in a spec (the weights' own budget is checked on the meta device)
_FIELDS = {  # op -> its integer fields
    "linear": ("in", "out"),
    "conv2d": ("in_ch", "out_ch", "kernel", "stride", "padding"),
    "conv_transpose2d": ("in_ch", "out_ch", "kernel", "stride", "padding", "output_padding"),
    "relu": (), "leaky_relu": (), "sigmoid": (), "tanh": (), "flatten": (), "reshape": (), "pad": (),
}
OPS: tuple[str, ...] = tuple(_FIELDS)


def _int(layer: dict, key: str, where: str, low: int = 0) -> int:
    value = layer.get(key, 0 if key == "output_padding" else None)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= MAX_SIZE:
        raise ValueError(f"{where}: {key} must be an integer from {low}, got {value!r}")
    return value


def _ints(values: Any, where: str, key: str, n: int | None = None, low: int = 1) -> tuple[int, ...]:
    if not isinstance(values, list) or not 0 < len(values) <= 8 or (n is not None and len(values) != n) or not all(
            isinstance(v, int) and not isinstance(v, bool) and low <= v <= MAX_SIZE for v in values):
        raise ValueError(f"{where}: {key} must be a list of {n or 'up to 8'} integers from {low}, got {values!r}")
    return tuple(values)


def _layer(layer: Any, shape: Shape, where: str) -> tuple[list[nn.Module], Shape]:
    """One layer's modules and the shape it gives, refusing a field or an input shape it cannot take."""
    if not isinstance(layer, dict) or layer.get("op") not in _FIELDS:
        raise ValueError(f"{where}: a layer must be an object with 'op' one of {OPS}, got {str(layer)[:80]}")
    op, size = layer["op"], math.prod(shape)
    f = {key: _int(layer, key, where, low=0 if key in ("padding", "output_padding") else 1) for key in _FIELDS[op]}
    if op == "linear":
        if size != f["in"]:
            raise ValueError(f"{where}: a linear layer of {f['in']} inputs gets {shape}")
        return [nn.Flatten(), nn.Linear(f["in"], f["out"])] if len(shape) > 1 else [nn.Linear(f["in"], f["out"])], \
            (f["out"],)
    if op in ("conv2d", "conv_transpose2d"):
        return _conv(op, f, shape, where)
    if op == "relu":
        return [nn.ReLU()], shape
    if op == "leaky_relu":
        slope = layer.get("slope")
        if not isinstance(slope, (int, float)) or isinstance(slope, bool) or not math.isfinite(slope):
            raise ValueError(f"{where}: slope must be a finite number, got {slope!r}")
        return [nn.LeakyReLU(float(slope))], shape
    if op == "sigmoid":
        return [nn.Sigmoid()], shape
    if op == "tanh":
        return [nn.Tanh()], shape
    if op == "flatten":
        return [nn.Flatten()], (size,)
    if op == "reshape":
        to = _ints(layer.get("shape"), where, "shape")
        if math.prod(to) != size:
            raise ValueError(f"{where}: cannot reshape {shape} to {to}")
        return ([nn.Flatten()] if len(shape) > 1 else []) + ([nn.Unflatten(1, to)] if len(to) > 1 else []), to
    sides = _ints(layer.get("sides"), where, "sides", n=4, low=0)
    if len(shape) != 3:
        raise ValueError(f"{where}: a pad layer takes (C, H, W), gets {shape}")
    c, h, w = shape
    return [nn.ZeroPad2d(sides)], (c, h + sides[2] + sides[3], w + sides[0] + sides[1])


def _conv(op: str, f: dict, shape: Shape, where: str) -> tuple[list[nn.Module], Shape]:
    if len(shape) != 3 or shape[0] != f["in_ch"]:
        raise ValueError(f"{where}: a {op} layer of {f['in_ch']} channels gets {shape}")
    _, h, w = shape
    k, s, p = f["kernel"], f["stride"], f["padding"]
    if op == "conv2d":
        out = [(side + 2 * p - k) // s + 1 for side in (h, w)]
        module = nn.Conv2d(f["in_ch"], f["out_ch"], k, stride=s, padding=p)
    else:
        if f["output_padding"] >= s:
            raise ValueError(f"{where}: output_padding must be below the stride, got {f['output_padding']}")
        out = [(side - 1) * s - 2 * p + k + f["output_padding"] for side in (h, w)]
        module = nn.ConvTranspose2d(f["in_ch"], f["out_ch"], k, stride=s, padding=p,
                                    output_padding=f["output_padding"])
    if min(out) < 1:
        raise ValueError(f"{where}: a {op} layer leaves no pixels of its {h}x{w} input")
    return [module], (f["out_ch"], *out)


def build(layers: Any, shape: Shape, where: str) -> tuple[nn.Sequential, Shape]:
    """The layers as one Sequential applied to one sample of `shape`, and the shape it gives."""
    if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
        raise ValueError(f"{where}: expected a list of at most {MAX_LAYERS} layers")
    modules: list[nn.Module] = []
    for i, layer in enumerate(layers):
        more, shape = _layer(layer, shape, f"{where} layer {i}")
        modules += more
    return nn.Sequential(*modules), shape


def _part(layers: Any, key: str, where: str) -> Any:
    if not isinstance(layers, dict) or key not in layers:
        raise ValueError(f"{where}: expected an object with {key!r}")
    return layers[key]


class LayerEncoder(nn.Module):
    """x -> features (`body`) -> two heads `mu` and `logvar`, each its own list of layers."""

    def __init__(self, input_shape: Shape, latent_dim: int, layers: Any):
        super().__init__()
        encoder = _part(layers, "encoder", "layers")
        self.body, shape = build(_part(encoder, "body", "encoder"), tuple(input_shape), "encoder body")
        self.mu, mu_shape = build(_part(encoder, "mu", "encoder"), shape, "encoder mu")
        self.logvar, logvar_shape = build(_part(encoder, "logvar", "encoder"), shape, "encoder logvar")
        if mu_shape != (latent_dim,) or logvar_shape != (latent_dim,):
            raise ValueError(f"the encoder's heads give {mu_shape} and {logvar_shape}, not ({latent_dim},) each")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)  # (B, ...) features
        return self.mu(h), self.logvar(h)  # (B, D) each

    def as_sequential(self) -> nn.Sequential:
        """x -> the features the heads read (for the export)."""
        return self.body


class LayerDecoder(nn.Module):
    """z -> the layers -> p(x|z)'s parameters (B, C, H, W): the list must end in the image's shape."""

    def __init__(self, input_shape: Shape, latent_dim: int, layers: Any):
        super().__init__()
        self.net, shape = build(_part(layers, "decoder", "layers"), (latent_dim,), "decoder")
        if shape != tuple(input_shape):
            raise ValueError(f"the decoder gives {shape}, not the image's {tuple(input_shape)}")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # (B, C, H, W)

    def as_sequential(self) -> nn.Sequential:
        """The forward pass as one Sequential (for the export)."""
        return self.net
