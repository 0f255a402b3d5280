"""An ONNX graph (as torch.onnx.export writes a VAE's encoder or decoder) translated into the engine's layer list
(vae_core/layers.py) with its weights, node by node, without running anything.

The nodes are walked in their (topological) order. A value is either data — what the graph's input becomes after
a chain of layers, with one sample's shape — or a constant: a weight, or shape arithmetic (Shape, Gather, Concat,
Unsqueeze, Div... as the exporter writes `x.view(x.size(0), -1)` or `chunk`). Constants are computed twice, for a
batch of 2 and of 3, so a value that depends on the batch size is told apart from one that does not. Ops on data
become layers: Gemm / MatMul (+ Add as its bias) -> linear, Conv, ConvTranspose, Relu, LeakyRelu, Sigmoid, Tanh,
Reshape / Flatten, Pad (zeros), Split / Slice of a linear layer's outputs (the encoder's mu and log-variance halves),
Identity and Dropout (inference). Anything else is refused by name: "op Softplus at node N is not supported"."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import helper

BATCHES = (2, 3)  # the two batch sizes constants are computed for


@dataclass(eq=False)
class Layer:
    """One layer of vae_core/layers.py's list, with its tensors (weight, bias) as float32 arrays."""

    spec: dict
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Data:
    """The graph's input after `layers`: one sample's shape."""

    layers: tuple[Layer, ...]
    shape: tuple[int, ...]

    def then(self, layer: Layer, shape: tuple[int, ...]) -> "Data":
        return Data(self.layers + (layer,), shape)


@dataclass
class Const:
    """A constant, as computed for each batch size of BATCHES (the same array where it does not depend on it)."""

    values: tuple[np.ndarray, np.ndarray]

    @property
    def is_static(self) -> bool:
        a, b = self.values
        return a is b or (a.shape == b.shape and np.array_equal(a, b))

    @property
    def static(self) -> np.ndarray:
        if not self.is_static:
            raise ValueError("depends on the batch size")
        return self.values[0]


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _resolve(target: np.ndarray, full: tuple[int, ...], allow_zero: bool) -> tuple[int, ...]:
    """ONNX Reshape's output shape: 0 copies the input's dimension (unless allowzero), one -1 takes the rest."""
    dims = [int(v) for v in target.ravel()]
    dims = [full[i] if d == 0 and not allow_zero and i < len(full) else d for i, d in enumerate(dims)]
    if dims.count(-1) > 1 or any(d < -1 for d in dims):
        raise ValueError(f"cannot reshape to {dims}")
    known = math.prod(d for d in dims if d != -1)
    if -1 in dims:
        if known == 0 or math.prod(full) % known:
            raise ValueError(f"cannot reshape {full} to {dims}")
        dims[dims.index(-1)] = math.prod(full) // known
    if math.prod(dims) != math.prod(full):
        raise ValueError(f"cannot reshape {full} to {dims}")
    return tuple(dims)


class Translator:
    """Walks one graph; `values` maps each tensor name to its Data or Const."""

    def __init__(self, name: str, graph: onnx.GraphProto, tensors: dict[str, np.ndarray]):
        self.name, self.graph = name, graph
        self.values: dict[str, Data | Const] = {k: Const((v, v)) for k, v in tensors.items()}

    def refuse(self, node: onnx.NodeProto, why: str) -> ValueError:
        return ValueError(f"{self.name}: op {node.op_type} at node {node.name or '?'} {why}")

    def run(self, start: Data) -> list[Data | Const]:
        """The graph's outputs, its one input being `start`."""
        inputs = [i for i in self.graph.input if i.name not in self.values]
        if len(inputs) != 1:
            raise ValueError(f"{self.name}: expected one input, got {[i.name for i in inputs]}")
        self.values[inputs[0].name] = start
        for node in self.graph.node:
            if node.domain not in ("", "ai.onnx"):
                raise self.refuse(node, f"(domain {node.domain!r}) is not supported")
            args = []
            for name in node.input:
                if name and name not in self.values:
                    raise self.refuse(node, f"reads {name!r}, which nothing produces (a truncated file?)")
                args.append(self.values[name] if name else None)
            data = [a for a in args if isinstance(a, Data)]
            try:
                outs = self.on_data(node, args, data) if data else self.on_const(node, args)
            except (ValueError, IndexError, TypeError, KeyError, ZeroDivisionError, OverflowError) as exc:
                if isinstance(exc, ValueError) and str(exc).startswith(self.name):
                    raise
                raise self.refuse(node, f"cannot be translated: {exc}") from None
            for name, value in zip(node.output, outs):
                if name:
                    self.values[name] = value
        missing = [o.name for o in self.graph.output if o.name not in self.values]
        if missing:
            raise ValueError(f"{self.name}: output {missing[0]!r} is produced by no node (a truncated file?)")
        return [self.values[o.name] for o in self.graph.output]

    # ----------------------------------------------------------------------- constants

    def on_const(self, node: onnx.NodeProto, args: list) -> list[Const]:
        if node.op_type == "Constant":
            if node.output[0] in self.values:
                return [self.values[node.output[0]]]
            a = _attrs(node)
            for key in ("value_int", "value_float", "value_ints", "value_floats"):
                if key in a:
                    value = np.asarray(a[key], np.int64 if "int" in key else np.float32)
                    return [Const((value, value))]
            raise self.refuse(node, "holds a kind of constant that is not supported")
        fn = _CONST_OPS.get(node.op_type)
        if fn is None:
            raise self.refuse(node, "is not supported")
        results = [fn([a.values[i] if a is not None else None for a in args], _attrs(node)) for i in range(2)]
        return [Const((np.asarray(a), np.asarray(b))) for a, b in zip(*[r if isinstance(r, list) else [r]
                                                                           for r in results])]

    # ----------------------------------------------------------------------- data

    def on_data(self, node: onnx.NodeProto, args: list, data: list[Data]) -> list:
        op, a = node.op_type, _attrs(node)
        if op == "Add" and len(args) == 2 and isinstance(args[1], Data) and isinstance(args[0], Const):
            args = args[::-1]  # bias + x: the same as x + bias
        x = args[0]
        if len(data) > 1 or not isinstance(x, Data):
            raise self.refuse(node, "combines two computed tensors (a skip connection?); not supported")
        consts = [c.values[0] if isinstance(c, Const) and c.is_static else None for c in args[1:]]
        if op in ("Identity", "Dropout"):
            return [x]
        if op == "Shape":
            start, end = a.get("start", 0), a.get("end", None)
            return [Const(tuple(np.asarray((b, *x.shape), np.int64)[start:end] for b in BATCHES))]
        if op in ("Relu", "Sigmoid", "Tanh"):
            return [x.then(Layer({"op": op.lower()}), x.shape)]
        if op == "LeakyRelu":
            return [x.then(Layer({"op": "leaky_relu", "slope": float(a.get("alpha", 0.01))}), x.shape)]
        if op in ("Gemm", "MatMul"):
            return [self.linear(node, x, consts, a)]
        if op == "Add":
            return [self.bias(node, x, consts[0])]
        if op in ("Conv", "ConvTranspose"):
            return self.conv(node, x, consts, a)
        if op == "Reshape":
            targets = args[1].values
            full = [_resolve(t, (b, *x.shape), bool(a.get("allowzero", 0))) for t, b in zip(targets, BATCHES)]
            if full[0][0] != BATCHES[0] or full[1][0] != BATCHES[1] or full[0][1:] != full[1][1:]:
                raise self.refuse(node, f"reshapes across samples ({full[0]}); only whole samples are reshaped")
            return [self.reshape(x, full[0][1:])]
        if op == "Flatten":
            if a.get("axis", 1) != 1:
                raise self.refuse(node, "flattens across samples (axis != 1); not supported")
            return [self.reshape(x, (math.prod(x.shape),))]
        if op == "Pad":
            return [self.pad(node, x, consts, a)]
        if op in ("Split", "Slice"):
            return self.split(node, x, args, a)
        raise self.refuse(node, "is not supported")

    def reshape(self, x: Data, shape: tuple[int, ...]) -> Data:
        if shape == x.shape:
            return x
        spec = {"op": "flatten"} if len(shape) == 1 else {"op": "reshape", "shape": list(shape)}
        return x.then(Layer(spec), shape)

    def linear(self, node, x: Data, consts: list, a: dict) -> Data:
        if len(x.shape) != 1:
            raise self.refuse(node, f"multiplies a {x.shape} tensor per sample; only vectors (after a flatten) are")
        w = consts[0]
        if w is None or w.ndim != 2:
            raise self.refuse(node, "needs a constant weight matrix")
        if node.op_type == "MatMul":
            weight, bias = w.T, np.zeros(w.shape[1], np.float32)
        else:
            if a.get("transA", 0):
                raise self.refuse(node, "transposes its input (transA); not supported")
            weight = (w if a.get("transB", 0) else w.T) * np.float32(a.get("alpha", 1.0))
            c = consts[1] if len(consts) > 1 else None
            bias = np.zeros(weight.shape[0], np.float32) if c is None else np.broadcast_to(
                c * np.float32(a.get("beta", 1.0)), (weight.shape[0],))
        if weight.shape[1] != x.shape[0]:
            raise self.refuse(node, f"takes {weight.shape[1]} inputs, gets {x.shape[0]}")
        layer = Layer({"op": "linear", "in": int(weight.shape[1]), "out": int(weight.shape[0])},
                      {"weight": weight, "bias": bias})
        return x.then(layer, (int(weight.shape[0]),))

    def bias(self, node, x: Data, c: np.ndarray | None) -> Data:
        """Add a constant to a linear or convolution's output: folded into its bias."""
        last = x.layers[-1] if x.layers else None
        if c is None or last is None or "bias" not in last.tensors:
            raise self.refuse(node, "adds to something other than a linear layer's or convolution's output; "
                                    "not supported")
        n = last.tensors["bias"].shape[0]
        try:
            add = np.broadcast_to(c, (1, *x.shape))
        except ValueError:
            raise self.refuse(node, f"adds a {c.shape} constant to {x.shape}") from None
        per_channel = add.reshape(1, n, -1) if len(x.shape) == 3 else add.reshape(1, n, 1)
        if not np.all(per_channel == per_channel[..., :1]):
            raise self.refuse(node, "adds a different constant per pixel; only a bias per channel is supported")
        layer = Layer(last.spec, {**last.tensors, "bias": last.tensors["bias"] + per_channel[0, :, 0]})
        return Data(x.layers[:-1] + (layer,), x.shape)

    def conv(self, node, x: Data, consts: list, a: dict) -> list[Data]:
        transposed = node.op_type == "ConvTranspose"
        w = consts[0]
        if w is None or w.ndim != 4 or len(x.shape) != 3:
            raise self.refuse(node, "is supported in 2-D only, with a constant weight")
        kernel = tuple(a.get("kernel_shape", w.shape[2:]))
        strides, dilations = tuple(a.get("strides", (1, 1))), tuple(a.get("dilations", (1, 1)))
        pads = tuple(a.get("pads", (0, 0, 0, 0)))  # top, left, bottom, right
        if a.get("group", 1) != 1 or dilations != (1, 1) or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise self.refuse(node, "uses groups, dilation or auto_pad; not supported")
        if kernel[0] != kernel[1] or strides[0] != strides[1]:
            raise self.refuse(node, f"has a {kernel[0]}x{kernel[1]} kernel or {strides} strides; square only")
        if "output_shape" in a:
            raise self.refuse(node, "sets output_shape; not supported")
        out_pad = tuple(a.get("output_padding", (0, 0)))
        if out_pad[0] != out_pad[1]:
            raise self.refuse(node, f"has output_padding {out_pad}; square only")
        in_ch, out_ch = (w.shape[0], w.shape[1]) if transposed else (w.shape[1], w.shape[0])
        if x.shape[0] != in_ch:
            raise self.refuse(node, f"takes {in_ch} channels, gets {x.shape}")
        c, h, wd = x.shape
        if len(set(pads)) != 1:
            if transposed:
                raise self.refuse(node, f"has uneven pads {pads}; not supported")
            top, left, bottom, right = pads
            x = x.then(Layer({"op": "pad", "sides": [left, right, top, bottom]}), (c, h + top + bottom,
                                                                                   wd + left + right))
            c, h, wd = x.shape
            pads = (0, 0, 0, 0)
        k, s, p = int(kernel[0]), int(strides[0]), int(pads[0])
        bias = consts[1] if len(consts) > 1 and consts[1] is not None else np.zeros(out_ch, np.float32)
        spec = {"op": "conv_transpose2d" if transposed else "conv2d", "in_ch": int(in_ch), "out_ch": int(out_ch),
                "kernel": k, "stride": s, "padding": p}
        if transposed:
            spec["output_padding"] = int(out_pad[0])
            out = tuple((side - 1) * s - 2 * p + k + out_pad[0] for side in (h, wd))
        else:
            out = tuple((side + 2 * p - k) // s + 1 for side in (h, wd))
        return [x.then(Layer(spec, {"weight": w, "bias": bias}), (int(out_ch), *map(int, out)))]

    def pad(self, node, x: Data, consts: list, a: dict) -> Data:
        pads = consts[0] if consts and consts[0] is not None else np.asarray(a.get("pads", ()))
        value = consts[1] if len(consts) > 1 and consts[1] is not None else np.float32(a.get("value", 0.0))
        mode = a.get("mode", b"constant")
        if len(consts) > 2 and consts[2] is not None:
            raise self.refuse(node, "pads chosen axes (axes input); not supported")
        if mode not in (b"constant", "constant") or np.any(value != 0) or len(x.shape) != 3 or pads.size != 8:
            raise self.refuse(node, "is supported as zero padding of (B, C, H, W) only")
        n0, c0, top, left, n1, c1, bottom, right = (int(v) for v in pads)
        if n0 or c0 or n1 or c1 or min(top, left, bottom, right) < 0:
            raise self.refuse(node, f"pads {list(pads)}; only non-negative pads of height and width are supported")
        c, h, w = x.shape
        return x.then(Layer({"op": "pad", "sides": [left, right, top, bottom]}),
                      (c, h + top + bottom, w + left + right))

    def split(self, node, x: Data, args: list, a: dict) -> list[Data]:
        """Parts of a linear layer's outputs (as `chunk` exports): each a linear layer of those rows."""
        last = x.layers[-1] if x.layers else None
        if len(x.shape) != 1 or last is None or last.spec["op"] != "linear":
            raise self.refuse(node, "splits something other than a linear layer's outputs; not supported")
        n = x.shape[0]
        if node.op_type == "Slice":
            starts, ends = (args[i].static.ravel() for i in (1, 2))
            axes = args[3].static.ravel() if len(args) > 3 and args[3] is not None else np.zeros(1, np.int64)
            steps = args[4].static.ravel() if len(args) > 4 and args[4] is not None else np.ones(1, np.int64)
            if len(starts) != 1 or int(axes[0]) not in (1, -1) or int(steps[0]) != 1:
                raise self.refuse(node, "slices other than one run of features; not supported")
            bounds = [slice(int(starts[0]), int(ends[0])).indices(n)[:2]]
        else:
            if a.get("axis", 0) not in (1, -1):
                raise self.refuse(node, "splits across samples; not supported")
            sizes = args[1].static.ravel().tolist() if len(args) > 1 and args[1] is not None else a.get("split")
            if sizes is None:
                parts = a.get("num_outputs", len(node.output))
                sizes = [math.ceil(n / parts)] * (parts - 1) + [n - math.ceil(n / parts) * (parts - 1)]
            if sum(sizes) != n:
                raise self.refuse(node, f"splits {n} features into {sizes}")
            edges = np.cumsum([0, *sizes])
            bounds = list(zip(edges[:-1].tolist(), edges[1:].tolist()))
        return [self.rows(x, last, lo, hi) for lo, hi in bounds]

    @staticmethod
    def rows(x: Data, last: Layer, lo: int, hi: int) -> Data:
        """The linear layer `last` (x's last) cut to its outputs lo..hi."""
        spec = {**last.spec, "out": hi - lo}
        layer = Layer(spec, {"weight": last.tensors["weight"][lo:hi], "bias": last.tensors["bias"][lo:hi]})
        return Data(x.layers[:-1] + (layer,), (hi - lo,))


def _cast(args, a):
    return args[0].astype(helper.tensor_dtype_to_np_dtype(a["to"]))


def _slice(args, a):
    x, starts, ends = args[0], args[1], args[2]
    axes = args[3] if len(args) > 3 and args[3] is not None else range(len(starts))
    steps = args[4] if len(args) > 4 and args[4] is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps):
        index[int(ax)] = slice(int(s), int(e), int(st))
    return x[tuple(index)]


def _div(args, a):
    x, y = args
    return x // y if np.issubdtype(np.asarray(x).dtype, np.integer) else x / y


def _axes(args, a):
    return tuple(int(v) for v in (args[1] if len(args) > 1 and args[1] is not None else a.get("axes", ())))


def _constant_of_shape(args, a):
    shape = [int(v) for v in args[0].ravel()]
    if any(v < 0 for v in shape) or math.prod(shape) > MAX_SHAPE_VALUES:
        raise ValueError(f"a constant of shape {shape} is more than shape arithmetic needs")
    fill = a.get("value")
    value = onnx.numpy_helper.to_array(fill).ravel()[0] if fill is not None else np.float32(0)
    return np.full(shape, value)


MAX_SHAPE_VALUES = 4096  # the most values shape arithmetic makes at once (pads, shapes: a handful)
_CONST_OPS = {  # shape arithmetic on constants (numpy), as the exporter writes it
    "Identity": lambda args, a: args[0],
    "Cast": _cast,
    "Gather": lambda args, a: np.take(args[0], args[1], axis=a.get("axis", 0)),
    "Unsqueeze": lambda args, a: np.expand_dims(args[0], _axes(args, a)),
    "Squeeze": lambda args, a: np.squeeze(args[0], _axes(args, a) or None),
    "Concat": lambda args, a: np.concatenate([np.atleast_1d(v) for v in args], axis=a.get("axis", 0)),
    "Add": lambda args, a: args[0] + args[1],
    "Sub": lambda args, a: args[0] - args[1],
    "Mul": lambda args, a: args[0] * args[1],
    "Div": _div,
    "Slice": _slice,
    "Reshape": lambda args, a: args[0].reshape(_resolve(args[1], args[0].shape, bool(a.get("allowzero", 0)))),
    "Shape": lambda args, a: np.asarray(args[0].shape, np.int64)[a.get("start", 0):a.get("end", None)],
    "ConstantOfShape": _constant_of_shape,
    "Transpose": lambda args, a: np.transpose(args[0], a.get("perm")),
}


def to_float32(layers: list[Layer]) -> None:
    """Every weight as float32 (the engine's type), in place."""
    for layer in layers:
        layer.tensors = {k: np.array(v, np.float32, order="C") for k, v in layer.tensors.items()}  # own, writable
