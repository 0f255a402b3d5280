"""A run made from two ONNX files: an encoder x -> (mu, log-variance) and a decoder z -> logits or means, each
translated into the engine's own layers (onnx_graph.py) so the run is explored (and exported to the browser) like
one the engine trained; it is never trained here (vae_core/architectures.py: "onnx" is not trainable).

What is accepted: an encoder whose input is the image (B, C, H, W) or flat (B, C*H*W), with two outputs (mu first,
then the log-variance) or one of 2·D values whose first half is mu (a final linear layer, maybe then `chunk`ed);
a decoder whose input is (B, D) and whose output has C*H*W values per sample. For a Bernoulli likelihood the
decoder's output is read as logits; a final Sigmoid is the likelihood's own and is taken off (its input are the
logits). For a Gaussian one the output is the mean. The run records where it came from (state.json "imported": the
files' names, sizes and SHA-256, their producer and opset)."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..architectures import IMPORTED_ARCH
from ..config import ModelConfig, RunConfig
from ..likelihoods import likelihood
from ..model import VAE
from ..runs.budget import ENCODE_BATCH, check_budget, price
from ..runs.files import move_in
from ..runs.folder import save_run
from ..runs.names import sanitize_name
from . import IMPORT_LIKELIHOODS
from .onnx_file import OnnxFile, read_onnx
from .onnx_graph import Data, Layer, Translator, to_float32


def _input_rank(f: OnnxFile) -> tuple[int, list]:
    """The rank of the graph's one (non-weight) input and its declared dims (ints, or None where symbolic)."""
    inputs = [i for i in f.graph.input if i.name not in f.tensors]
    if len(inputs) != 1:
        raise ValueError(f"{f.name}: expected one input, got {[i.name for i in inputs]}")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    return len(dims), dims


def _outputs(f: OnnxFile, start: Data) -> list[Data]:
    outs = Translator(f.name, f.graph, f.tensors).run(start)
    if not all(isinstance(o, Data) for o in outs):
        raise ValueError(f"{f.name}: an output does not depend on the input")
    return outs


def encoder_layers(f: OnnxFile, input_shape: tuple[int, int, int]) -> tuple[dict, int]:
    """The encoder's body and heads as layer lists, and the latent size D."""
    rank, dims = _input_rank(f)
    size = int(np.prod(input_shape))
    if rank == 4 and all(d in (None, want) for d, want in zip(dims[1:], input_shape)):
        start = Data((), tuple(input_shape))
    elif rank == 2 and dims[1] in (None, size):
        start = Data((Layer({"op": "flatten"}),), (size,))
    else:
        raise ValueError(f"{f.name}: its input is declared {dims}, not (B, {', '.join(map(str, input_shape))}) "
                         f"or (B, {size}) (check --input-shape)")
    outs = _outputs(f, start)
    if len(outs) == 1:  # one output of 2·D values: mu is the first half (a final linear layer, cut in two)
        out, last = outs[0], outs[0].layers[-1] if outs[0].layers else None
        if len(out.shape) != 1 or out.shape[0] % 2 or last is None or last.spec["op"] != "linear":
            raise ValueError(f"{f.name}: one output of {out.shape} values; expected two outputs (mu, log-variance) "
                             "or one of 2·D values from a final linear layer (mu its first half)")
        half = out.shape[0] // 2
        outs = [Translator.rows(out, last, 0, half), Translator.rows(out, last, half, 2 * half)]
    if len(outs) != 2 or outs[0].shape != outs[1].shape or len(outs[0].shape) != 1:
        raise ValueError(f"{f.name}: expected outputs mu and log-variance of (B, D) each, got "
                         f"{[o.shape for o in outs]}")
    mu, logvar = outs
    shared = 0
    while shared < min(len(mu.layers), len(logvar.layers)) and mu.layers[shared] is logvar.layers[shared]:
        shared += 1
    if shared == len(mu.layers) or shared == len(logvar.layers):
        raise ValueError(f"{f.name}: mu and the log-variance must each end in layers of their own")
    return {"body": list(mu.layers[:shared]), "mu": list(mu.layers[shared:]),
            "logvar": list(logvar.layers[shared:])}, mu.shape[0]


def decoder_layers(f: OnnxFile, input_shape: tuple[int, int, int], latent_dim: int,
                   likelihood_name: str) -> list[Layer]:
    """The decoder as one layer list ending in the image's shape (a final Sigmoid of a Bernoulli decoder taken off)."""
    rank, dims = _input_rank(f)
    if rank != 2 or dims[1] not in (None, latent_dim):
        raise ValueError(f"{f.name}: its input is declared {dims}, not (B, {latent_dim}) as the encoder's codes")
    outs = _outputs(f, Data((), (latent_dim,)))
    if len(outs) != 1:
        raise ValueError(f"{f.name}: expected one output (the image's logits or means), got {len(outs)}")
    out = outs[0]
    layers = list(out.layers)
    if likelihood(likelihood_name).output_op == "sigmoid" and layers and layers[-1].spec["op"] == "sigmoid":
        layers.pop()  # the likelihood's own sigmoid: its input are the logits
    if int(np.prod(out.shape)) != int(np.prod(input_shape)):
        raise ValueError(f"{f.name}: gives {out.shape} per sample, not the image's {tuple(input_shape)}")
    if out.shape != tuple(input_shape):
        layers.append(Layer({"op": "reshape", "shape": list(input_shape)}))
    return layers


def _weighted(layers: list[Layer]) -> list[Layer]:
    return [layer for layer in layers if layer.tensors]


def _load_weights(model: VAE, parts: list[tuple[torch.nn.Module, list[Layer]]]) -> None:
    """Copy each layer's tensors into its module (vae_core/layers.py builds one module with weights per layer)."""
    with torch.no_grad():
        for module, layers in parts:
            targets = [m for m in module.modules() if hasattr(m, "weight") and isinstance(m.weight, torch.Tensor)]
            weighted = _weighted(layers)
            assert len(targets) == len(weighted), "one module with weights per weighted layer"
            for target, layer in zip(targets, weighted):
                target.weight.copy_(torch.from_numpy(layer.tensors["weight"]).reshape(target.weight.shape))
                target.bias.copy_(torch.from_numpy(layer.tensors["bias"]))


def build_imported(encoder: str | Path, decoder: str | Path, input_shape: tuple[int, int, int],
                   likelihood_name: str, names: tuple[str, str] | None = None) -> tuple[VAE, ModelConfig, dict]:
    """The engine's VAE from two ONNX files, its config, and where it came from; ValueError naming the file (by
    `names` where given: uploads) and the node on anything refused (nothing is written)."""
    if likelihood_name not in IMPORT_LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {IMPORT_LIKELIHOODS}, got {likelihood_name!r}")
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"input shape must be C,H,W with positive sizes, got {input_shape}")
    enc, dec = (read_onnx(path, name) for path, name in zip((encoder, decoder), names or (None, None)))
    heads, latent_dim = encoder_layers(enc, input_shape)
    dec_layers = decoder_layers(dec, input_shape, latent_dim, likelihood_name)
    every = [*heads["body"], *heads["mu"], *heads["logvar"], *dec_layers]
    to_float32(every)
    specs = lambda layers: [layer.spec for layer in layers]  # noqa: E731
    config = ModelConfig(input_shape=input_shape, latent_dim=latent_dim, arch=IMPORTED_ARCH,
                         likelihood=likelihood_name,
                         layers={"encoder": {k: specs(v) for k, v in heads.items()}, "decoder": specs(dec_layers)})
    check_budget(price(config, ENCODE_BATCH, export=True), f"importing {enc.name} and {dec.name}")
    model = VAE(config)
    _load_weights(model, [(model.encoder.body, heads["body"]), (model.encoder.mu, heads["mu"]),
                          (model.encoder.logvar, heads["logvar"]), (model.decoder.net, dec_layers)])
    provenance = {"format": "onnx", "encoder": enc.provenance, "decoder": dec.provenance}
    return model.eval(), config, provenance


def save_imported(run_dir: str | Path, model: VAE, config: ModelConfig, provenance: dict,
                  dataset: dict | None = None) -> Path:
    """Write the imported model as a run folder (no history: it was trained elsewhere)."""
    return save_run(run_dir, model, RunConfig(model=config, dataset=dataset or {}), metrics={"epochs_done": 0},
                    state={"step": 0, "epoch": 0, "finished": True, "imported": provenance})


def import_onnx(encoder: str | Path, decoder: str | Path, input_shape: tuple[int, int, int], likelihood_name: str,
                out: str | Path, dataset: dict | None = None) -> Path:
    """Make run folder `out` from two ONNX files (refused if `out` exists; nothing is written on any error)."""
    out = Path(out)
    if out.exists():
        raise ValueError(f"{out}: already exists; name a new run folder")
    model, config, provenance = build_imported(encoder, decoder, input_shape, likelihood_name)
    return save_imported(out, model, config, provenance, dataset)


def import_onnx_uploads(encoder: tuple[str, bytes], decoder: tuple[str, bytes], input_shape: tuple[int, int, int],
                        likelihood_name: str, root: str | Path, dataset: dict | None = None) -> Path:
    """The same from two uploaded files (name, bytes), into a new run of root named after the encoder's file."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=root, prefix=".onnx.new-"))
    try:
        paths = []
        for i, (name, data) in enumerate((encoder, decoder)):
            path = scratch / f"{i}.onnx"
            path.write_bytes(data)
            paths.append(path)
        names = (Path(encoder[0]).name[:120], Path(decoder[0]).name[:120])
        model, config, provenance = build_imported(*paths, input_shape, likelihood_name, names)
        run = save_imported(scratch / "run", model, config, provenance, dataset)
        return move_in(run, root, sanitize_name(f"{Path(encoder[0]).stem[:48]}-onnx"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
