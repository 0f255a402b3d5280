"""Models trained elsewhere, made into runs: onnx_file.py reads an ONNX file as untrusted input, onnx_graph.py
translates its graph into the engine's layers (vae_core/layers.py), onnx_run.py makes the run. This module
re-exports the public API."""
from .onnx_file import read_onnx
from .onnx_run import IMPORT_LIKELIHOODS, build_imported, import_onnx, import_onnx_uploads

__all__ = ["IMPORT_LIKELIHOODS", "build_imported", "import_onnx", "import_onnx_uploads", "read_onnx"]
