"""Models trained elsewhere, made into runs: onnx_file.py reads an ONNX file as untrusted input, onnx_graph.py
translates its graph into the engine's layers (vae_core/layers.py), onnx_run.py makes the run.

Importing the `onnx` package takes seconds, so this module stays light (a page that only shows the import form does
not pay for it): take the functions from onnx_run.py where they are called."""
from ..likelihoods import LIKELIHOODS, likelihood

# a learned observation std has no weights in an exported network: those likelihoods cannot be imported
IMPORT_LIKELIHOODS: tuple[str, ...] = tuple(n for n in LIKELIHOODS if likelihood(n).sigma != "learned")

__all__ = ["IMPORT_LIKELIHOODS"]
