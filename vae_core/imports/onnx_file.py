"""An ONNX file read as untrusted input: parsed, never executed, every tensor checked before its values are read.

The bytes are parsed as one protobuf message (onnx's ModelProto: data only, no code); nothing is loaded from other
files (a tensor that keeps its data in an external file is refused, whatever its path says); every tensor's
declared size is priced against the memory budget (vae_core/runs/budget.py) before any array is made from it, and
must match the data the file really holds; a truncated or corrupt file is refused with an error naming it, as a run
zip is (vae_core/runs/archive.py)."""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, numpy_helper

from ..runs.budget import human_bytes, memory_budget
from ..runs.checks import MAX_TENSOR_BYTES
from ..runs.files import read_file

MAX_ONNX_BYTES = MAX_TENSOR_BYTES  # one file: protobuf itself cannot hold more than 2 GiB
MAX_NODES = 10_000
_TYPES = {  # the element types a VAE's weights and shape constants come in -> bytes per element
    TensorProto.FLOAT: 4, TensorProto.DOUBLE: 8, TensorProto.FLOAT16: 2, TensorProto.INT64: 8, TensorProto.INT32: 4,
    TensorProto.BOOL: 1,
}
_FIELD = {TensorProto.FLOAT: "float_data", TensorProto.DOUBLE: "double_data", TensorProto.FLOAT16: "int32_data",
          TensorProto.INT64: "int64_data", TensorProto.INT32: "int32_data", TensorProto.BOOL: "int32_data"}


@dataclass
class OnnxFile:
    """A parsed, checked ONNX file: its graph, its tensors as arrays (by name) and where it came from."""

    name: str  # the file's name, for messages
    graph: onnx.GraphProto
    tensors: dict[str, np.ndarray]  # initializers and Constant nodes' values, by output name
    provenance: dict  # file, sha256, bytes, producer, opset


def _tensor(tensor: TensorProto, where: str, budget_left: int) -> tuple[np.ndarray, int]:
    """The array of a TensorProto once its type, declared size, storage and data length are checked; and its bytes."""
    label = f"{where}: tensor {tensor.name!r}" if tensor.name else f"{where}: a tensor"
    if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data):
        paths = [e.value for e in tensor.external_data if e.key == "location"]
        raise ValueError(f"{label} keeps its data in an external file ({paths[0][:80] if paths else '?'!r}); "
                         "only self-contained ONNX files are read (export without external data)")
    if tensor.data_type not in _TYPES:
        raise ValueError(f"{label} has element type {TensorProto.DataType.Name(tensor.data_type)}, not one of "
                         f"{', '.join(TensorProto.DataType.Name(t) for t in _TYPES)}")
    if any(d < 0 for d in tensor.dims) or len(tensor.dims) > 8:
        raise ValueError(f"{label} declares an invalid shape {list(tensor.dims)}")
    count = math.prod(tensor.dims)
    nbytes = count * _TYPES[tensor.data_type]
    if nbytes > budget_left or nbytes > MAX_TENSOR_BYTES:
        raise ValueError(f"{label} declares {count:,} elements ({human_bytes(nbytes)}), over this server's memory "
                         f"budget ({human_bytes(memory_budget())} per run, VAE_MEMORY_BUDGET_BYTES)")
    held = len(tensor.raw_data) // _TYPES[tensor.data_type] if tensor.HasField("raw_data") \
        else len(getattr(tensor, _FIELD[tensor.data_type]))
    if tensor.data_type == TensorProto.FLOAT16 and not tensor.HasField("raw_data"):
        held = len(tensor.int32_data)
    if held != count or (tensor.HasField("raw_data") and len(tensor.raw_data) != nbytes):
        raise ValueError(f"{label} declares {count:,} elements but holds {held:,} (a truncated or corrupt file?)")
    return numpy_helper.to_array(tensor), nbytes


def _refuse_subgraphs(node: onnx.NodeProto, where: str) -> None:
    for attr in node.attribute:
        if attr.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) or attr.HasField("g"):
            raise ValueError(f"{where}: op {node.op_type} at node {node.name or '?'} holds a subgraph; "
                             "not supported")
        if attr.type in (onnx.AttributeProto.SPARSE_TENSOR, onnx.AttributeProto.SPARSE_TENSORS):
            raise ValueError(f"{where}: op {node.op_type} at node {node.name or '?'} holds a sparse tensor; "
                             "not supported")


def read_onnx(path: str | Path, name: str | None = None) -> OnnxFile:
    """Parse and check an ONNX file (nothing else is read, nothing executed); ValueError naming the file (`name`, an
    upload's own name, else the path's) if it is truncated, corrupt, hostile or over the memory budget."""
    path = Path(path)
    name = name or path.name
    try:
        data = read_file(path, MAX_ONNX_BYTES)
    except ValueError as exc:
        raise ValueError(str(exc).replace(path.name, name, 1)) from None
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ValueError(f"{name}: not a valid ONNX file (truncated or corrupt: {exc})") from None
    graph = model.graph
    opsets = {o.domain: o.version for o in model.opset_import}
    if not data or not model.HasField("graph") or not graph.node or not graph.output or opsets.get("", 0) < 1:
        raise ValueError(f"{name}: not a complete ONNX model (no graph, outputs or opset: a truncated file?)")
    if len(graph.node) > MAX_NODES:
        raise ValueError(f"{name}: {len(graph.node):,} nodes; a VAE imported here has at most {MAX_NODES:,}")
    if len(graph.sparse_initializer):
        raise ValueError(f"{name}: sparse initializers are not supported")
    tensors, left = {}, memory_budget()
    for tensor in graph.initializer:
        tensors[tensor.name], nbytes = _tensor(tensor, name, left)
        left -= nbytes
    for node in graph.node:
        _refuse_subgraphs(node, name)
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            value = next((a for a in node.attribute if a.name == "value"), None)
            if value is not None and node.output:
                tensors[node.output[0]], nbytes = _tensor(value.t, name, left)
                left -= nbytes
    try:
        onnx.checker.check_model(model)  # structure only: every tensor is already known to be self-contained
    except (onnx.checker.ValidationError, RuntimeError, ValueError) as exc:
        raise ValueError(f"{name}: not a valid ONNX model ({str(exc).splitlines()[0][:200]})") from None
    provenance = {"file": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                  "producer": f"{model.producer_name} {model.producer_version}".strip()[:80],
                  "opset": int(opsets.get("", 0))}
    return OnnxFile(name=name, graph=graph, tensors=tensors, provenance=provenance)
