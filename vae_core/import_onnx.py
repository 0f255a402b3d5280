"""Command line: make a run from a VAE trained elsewhere, exported as two ONNX files (torch.onnx.export), so it is
explored like a run the engine trained (never trained further here).

    python -m vae_core.import_onnx --encoder enc.onnx --decoder dec.onnx --input-shape 1,28,28 \\
        --likelihood bernoulli --data mnist.npy --out runs/mnist-onnx

The encoder maps x (B, C, H, W) or (B, C*H*W) to mu and the log-variance (two outputs, or one output of 2·D values,
mu first); the decoder maps z (B, D) to logits (bernoulli; a final Sigmoid is taken off) or means (gaussian). Ops
the engine runs: Gemm/MatMul(+Add), Conv, ConvTranspose, Relu, LeakyRelu, Sigmoid, Tanh, Reshape/Flatten, zero
Pad, and the exporter's shape arithmetic; anything else is refused by name (vae_core/imports/onnx_graph.py).
"""
from __future__ import annotations

import argparse
import sys

from .data import load_source
from .imports import IMPORT_LIKELIHOODS
from .imports.onnx_run import import_onnx
from .train import add_data_args, data_source


def input_shape(text: str) -> tuple[int, int, int]:
    """--input-shape "1,28,28" as (1, 28, 28)."""
    try:
        shape = tuple(int(v) for v in str(text).split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"--input-shape must be C,H,W with positive integers like 1,28,28, got {text!r}")
    return shape


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m vae_core.import_onnx", description=__doc__.splitlines()[0])
    p.add_argument("--encoder", required=True, help="ONNX file: x -> (mu, log-variance)")
    p.add_argument("--decoder", required=True, help="ONNX file: z -> logits (bernoulli) or means (gaussian)")
    p.add_argument("--input-shape", required=True, help="the image's C,H,W, e.g. 1,28,28")
    p.add_argument("--likelihood", choices=IMPORT_LIKELIHOODS, required=True)
    p.add_argument("--out", required=True, help="run folder to write (must not exist)")
    add_data_args(p)
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> str:
    """Import, and say what was made (the data, when --data names it, must have the model's image shape)."""
    shape = input_shape(args.input_shape)
    dataset = None
    if args.data is not None:
        data = load_source(data_source(args))
        if tuple(data.shape) != shape:
            raise ValueError(f"--data {args.data} holds {data.shape} images, not the model's {shape}")
        dataset = data.source | {"name": data.name}
    path = import_onnx(args.encoder, args.decoder, shape, args.likelihood, args.out, dataset)
    return f"imported {args.encoder} and {args.decoder} as {path}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        print(run(args))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
