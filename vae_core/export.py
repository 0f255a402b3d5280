"""A VAE's decoder and encoder as layer programs for the browser's runtime (ui/explore/live/network.js), and the same
maths in numpy as the reference the browser is checked against.

A program is a list of ops in forward order, each a small dict (JSON) whose tensors live in one float32 blob:

    {"op": "linear", "in": 256, "out": 4096, "weight": offset, "bias": offset}     weight (out, in), torch's layout
    {"op": "relu"} | {"op": "leaky_relu", "slope": 0.2} | {"op": "sigmoid"} | {"op": "tanh"}   elementwise
    {"op": "reshape", "shape": [64, 8, 8]}                                           per sample, (C, H, W) order
    {"op": "conv2d" | "conv_transpose2d", "in_ch", "out_ch", "kernel", "stride", "padding", "in_hw", "out_hw",
     "weight": offset, "bias": offset}                                              weight as torch stores it (a
                                                                                     transposed one's output_padding
                                                                                     is in its out_hw)
    {"op": "pad" | "crop", "channels", "in_hw", "out_hw", "top", "left"}            a zero border added / cut off:
                                                                                     the input sits at (top, left) of
                                                                                     the output, or the output at
                                                                                     (top, left) of the input
    {"op": "bias", "shape": [C, H, W], "bias": offset}                               a value added per (C, H, W)
                                                                                     element (a conv decoder's last)

The spec's "output" is the op that ends the decoder, E[x|z] from its output ("sigmoid" or "clamp": the
likelihood's `output_op`, vae_core/likelihoods.py); the browser never sees a likelihood's name. Offsets count float32
values from the start of the blob; the decoder's tensors come first ("decoder_floats" of them), so a page that only
decodes can be sent that part alone and the encoder's later (ui/explore/data.py). Every module is translated one to
one; a module the browser cannot run (a new activation, dilation, groups...) raises ValueError naming it, so the page
can fall back to decoding on the server instead of drawing something wrong."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .architectures import Crop2d, PixelBias
from .model import VAE

FORMAT = "vae-browser/2"
OUTPUT_OPS = {  # the decoder's last op, E[x|z] from its output (vae_core/likelihoods.py: Likelihood.output_op), in numpy
    "sigmoid": lambda h: 1.0 / (1.0 + np.exp(-h)),
    "clamp": lambda h: np.clip(h, 0.0, 1.0),
}


@dataclass
class BrowserModel:
    """What the browser gets for one model: the programs (JSON) and their tensors (little-endian float32 bytes)."""

    spec: dict  # format, latent_dim, shape, output, decoder, encoder {body, mu, logvar}, n_floats, decoder_floats, …
    blob: bytes

    @property
    def hash(self) -> str:
        return self.spec["hash"]


class _Blob:
    """Collects tensors into one float32 buffer and hands out their offsets."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.size = 0

    def add(self, tensor: torch.Tensor) -> int:
        values = tensor.detach().cpu().to(torch.float32).contiguous().numpy().astype("<f4").ravel()
        offset = self.size
        self.parts.append(values)
        self.size += values.size
        return offset


def _ops(module: nn.Module, shape: tuple[int, ...], blob: _Blob) -> tuple[list[dict], tuple[int, ...]]:
    """The ops of a module applied to one sample of `shape`, and the shape it produces."""
    if isinstance(module, nn.Sequential):
        ops = []
        for child in module:
            child_ops, shape = _ops(child, shape, blob)
            ops += child_ops
        return ops, shape
    if isinstance(module, nn.Linear):
        if int(np.prod(shape)) != module.in_features:
            raise ValueError(f"a Linear layer expects {module.in_features} inputs, gets {shape}")
        return [{"op": "linear", "in": module.in_features, "out": module.out_features,
                 "weight": blob.add(module.weight), "bias": blob.add(module.bias)}], (module.out_features,)
    if isinstance(module, nn.ReLU):
        return [{"op": "relu"}], shape
    if isinstance(module, nn.LeakyReLU):
        return [{"op": "leaky_relu", "slope": float(module.negative_slope)}], shape
    if isinstance(module, (nn.Sigmoid, nn.Tanh)):
        return [{"op": "sigmoid" if isinstance(module, nn.Sigmoid) else "tanh"}], shape
    if isinstance(module, nn.Flatten):
        return [], (int(np.prod(shape)),)  # (C, H, W) is already stored flat in that order
    if isinstance(module, nn.Unflatten):
        if module.dim != 1 or int(np.prod(module.unflattened_size)) != int(np.prod(shape)):
            raise ValueError(f"the browser reshapes whole samples only, not {shape} by {module}")
        return [{"op": "reshape", "shape": list(module.unflattened_size)}], tuple(module.unflattened_size)
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return _conv_op(module, shape, blob)
    if isinstance(module, (nn.ZeroPad2d, Crop2d)):
        return _window_op(module, shape)
    if isinstance(module, PixelBias):
        if tuple(module.bias.shape) != tuple(shape):
            raise ValueError(f"a bias of shape {tuple(module.bias.shape)} does not fit its {shape} input")
        return [{"op": "bias", "shape": list(shape), "bias": blob.add(module.bias)}], shape
    raise ValueError(f"the browser cannot run a {type(module).__name__} layer")


def _conv_op(module: nn.Conv2d | nn.ConvTranspose2d, shape: tuple[int, ...], blob: _Blob):
    transposed = isinstance(module, nn.ConvTranspose2d)
    name = type(module).__name__
    square = lambda v: v[0] == v[1]  # noqa: E731
    if not (square(module.kernel_size) and square(module.stride) and square(module.padding)):
        raise ValueError(f"the browser runs square {name} kernels, strides and paddings only")
    if module.groups != 1 or tuple(module.dilation) != (1, 1) or module.padding_mode != "zeros" or module.bias is None:
        raise ValueError(f"the browser runs {name} without groups, dilation, bias-free or non-zero padding only")
    if transposed and not square(module.output_padding):
        raise ValueError("the browser runs ConvTranspose2d with a square output_padding only")
    if len(shape) != 3 or shape[0] != module.in_channels:
        raise ValueError(f"a {name} expects ({module.in_channels}, H, W) inputs, gets {shape}")
    k, s, p = module.kernel_size[0], module.stride[0], module.padding[0]
    _, h, w = shape
    if transposed:
        extra = module.output_padding[0]  # rows and columns added after the last, reached by no input but the bias
        out_hw = ((h - 1) * s - 2 * p + k + extra, (w - 1) * s - 2 * p + k + extra)
    else:
        out_hw = ((h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
    op = {"op": "conv_transpose2d" if transposed else "conv2d", "in_ch": module.in_channels,
          "out_ch": module.out_channels, "kernel": k, "stride": s, "padding": p, "in_hw": [h, w],
          "out_hw": list(out_hw), "weight": blob.add(module.weight), "bias": blob.add(module.bias)}
    return [op], (module.out_channels, *out_hw)


def _window_op(module: nn.ZeroPad2d | Crop2d, shape: tuple[int, ...]) -> tuple[list[dict], tuple[int, ...]]:
    """A zero padding or a crop as one "pad" / "crop" op; none where it leaves the shape as it is."""
    if len(shape) != 3:
        raise ValueError(f"a {type(module).__name__} expects (C, H, W) inputs, gets {shape}")
    c, h, w = shape
    if isinstance(module, Crop2d):
        kind, top, left, out_hw = "crop", module.top, module.left, (module.height, module.width)
        if top < 0 or left < 0 or top + out_hw[0] > h or left + out_hw[1] > w:
            raise ValueError(f"a Crop2d window {module} falls outside its {h}x{w} input")
    else:
        left, right, top, bottom = module.padding
        if min(module.padding) < 0 or module.value != 0:
            raise ValueError(f"the browser runs ZeroPad2d with non-negative sides only, not {module.padding}")
        kind, out_hw = "pad", (h + top + bottom, w + left + right)
    if out_hw == (h, w):
        return [], shape
    return [{"op": kind, "channels": c, "in_hw": [h, w], "out_hw": list(out_hw), "top": top, "left": left}], \
        (c, *out_hw)


def _decoder_ops(decoder: nn.Module, latent_dim: int, blob: _Blob) -> list[dict]:
    """The decoder's forward pass (vae_core/architectures.py: `as_sequential`) as ops."""
    if not hasattr(decoder, "as_sequential"):
        raise ValueError(f"the browser cannot run a {type(decoder).__name__}")
    return _ops(decoder.as_sequential(), (latent_dim,), blob)[0]


def _encoder_ops(encoder: nn.Module, input_shape: tuple[int, int, int], blob: _Blob) -> dict:
    """The encoder's features (`as_sequential`) and its two heads (every encoder of vae_core/architectures.py has
    them) as ops."""
    if not hasattr(encoder, "as_sequential") or not all(
            isinstance(getattr(encoder, name, None), nn.Module) for name in ("mu", "logvar")):
        raise ValueError(f"the browser cannot run a {type(encoder).__name__}")
    body, shape = _ops(encoder.as_sequential(), tuple(input_shape), blob)
    return {"body": body, "mu": _ops(encoder.mu, shape, blob)[0], "logvar": _ops(encoder.logvar, shape, blob)[0]}


def export_model(model: VAE) -> BrowserModel:
    """Both networks of a model for the browser; the hash names the content (same weights -> same hash)."""
    config, blob = model.config, _Blob()
    if model.likelihood.output_op not in OUTPUT_OPS:
        raise ValueError(f"the browser cannot end a decoder with {model.likelihood.output_op!r}")
    decoder = _decoder_ops(model.decoder, config.latent_dim, blob)
    decoder_floats = blob.size  # the decoder's tensors first: the sliders need only blob[:decoder_floats]
    spec = {"format": FORMAT, "latent_dim": config.latent_dim, "shape": list(config.input_shape),
            "output": model.likelihood.output_op, "decoder": decoder,
            "encoder": _encoder_ops(model.encoder, config.input_shape, blob), "n_floats": blob.size,
            "decoder_floats": decoder_floats}
    data = np.concatenate(blob.parts).astype("<f4").tobytes() if blob.parts else b""
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode())
    digest.update(data)
    spec["hash"] = digest.hexdigest()[:16]
    return BrowserModel(spec=spec, blob=data)


# --------------------------------------------------------------------------- the reference (numpy) of the runtime


def run_program(ops: list[dict], blob: bytes, x: np.ndarray) -> np.ndarray:
    """Apply ops to a batch x (N, ...) in numpy, float32 throughout, as the browser does: (N, ...) out."""
    floats = np.frombuffer(blob, dtype="<f4")
    tensor = lambda op, name, shape: floats[op[name]:op[name] + int(np.prod(shape))].reshape(shape)  # noqa: E731
    h = np.asarray(x, np.float32).reshape(len(x), -1)
    for op in ops:
        kind = op["op"]
        if kind == "linear":
            h = h.reshape(len(h), -1) @ tensor(op, "weight", (op["out"], op["in"])).T + tensor(op, "bias", (op["out"],))
        elif kind == "relu":
            h = np.maximum(h, 0.0)
        elif kind == "leaky_relu":
            h = np.where(h >= 0, h, np.float32(op["slope"]) * h)
        elif kind == "sigmoid":
            h = 1.0 / (1.0 + np.exp(-h))
        elif kind == "tanh":
            h = np.tanh(h)
        elif kind == "reshape":
            h = h.reshape(len(h), *op["shape"])
        elif kind in ("conv2d", "conv_transpose2d"):
            h = _conv(op, h, tensor)
        elif kind in ("pad", "crop"):
            h = _window(op, h)
        elif kind == "bias":
            h = h.reshape(len(h), *op["shape"]) + tensor(op, "bias", tuple(op["shape"]))
        else:
            raise ValueError(f"unknown op {kind!r}")
    return h.astype(np.float32)


def _conv(op: dict, h: np.ndarray, tensor) -> np.ndarray:
    """Convolution by its definition (loops over kernel taps), so it shares no code with torch."""
    k, s, p = op["kernel"], op["stride"], op["padding"]
    (ih, iw), (oh, ow) = op["in_hw"], op["out_hw"]
    n, ic, oc = len(h), op["in_ch"], op["out_ch"]
    x = h.reshape(n, ic, ih, iw)
    bias = tensor(op, "bias", (oc,))
    if op["op"] == "conv2d":
        w = tensor(op, "weight", (oc, ic, k, k))
        padded = np.zeros((n, ic, ih + 2 * p, iw + 2 * p), np.float32)
        padded[:, :, p:p + ih, p:p + iw] = x
        out = np.zeros((n, oc, oh, ow), np.float32)
        for ky in range(k):
            for kx in range(k):
                patch = padded[:, :, ky:ky + s * oh:s, kx:kx + s * ow:s]  # (N, IC, OH, OW)
                out += np.einsum("nchw,oc->nohw", patch, w[:, :, ky, kx])
        return out + bias[None, :, None, None]
    w = tensor(op, "weight", (ic, oc, k, k))
    rows, cols = max((ih - 1) * s + k, p + oh), max((iw - 1) * s + k, p + ow)  # room for an output_padding too
    full = np.zeros((n, oc, rows, cols), np.float32)  # before cropping the padding
    for ky in range(k):
        for kx in range(k):
            full[:, :, ky:ky + s * ih:s, kx:kx + s * iw:s] += np.einsum("nchw,co->nohw", x, w[:, :, ky, kx])
    return full[:, :, p:p + oh, p:p + ow] + bias[None, :, None, None]


def _window(op: dict, h: np.ndarray) -> np.ndarray:
    """A zero border added ("pad": the input placed at (top, left) of zeros) or cut off ("crop")."""
    (ih, iw), (oh, ow), top, left = op["in_hw"], op["out_hw"], op["top"], op["left"]
    x = h.reshape(len(h), op["channels"], ih, iw)
    if op["op"] == "crop":
        return x[:, :, top:top + oh, left:left + ow].copy()
    out = np.zeros((len(h), op["channels"], oh, ow), np.float32)
    out[:, :, top:top + ih, left:left + iw] = x
    return out


def reference_decode(model: BrowserModel, z: np.ndarray) -> np.ndarray:
    """E[x|z] as the browser computes it: z (N, D) -> images (N, C, H, W) in [0, 1]."""
    z = np.atleast_2d(np.asarray(z, np.float32))
    h = run_program(model.spec["decoder"], model.blob, z).reshape(len(z), *model.spec["shape"])
    return OUTPUT_OPS[model.spec["output"]](h).astype(np.float32)


def reference_encode(model: BrowserModel, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """q(z|x)'s mean and log-variance as the browser computes them: x (N, C, H, W) -> two (N, D) arrays."""
    encoder = model.spec["encoder"]
    h = run_program(encoder["body"], model.blob, np.asarray(x, np.float32))
    return run_program(encoder["mu"], model.blob, h), run_program(encoder["logvar"], model.blob, h)
