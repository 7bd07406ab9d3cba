"""Full-integer int8 quantization of a float TFLite :class:`~sdk.optimize.tflite_ir.Graph`.

Activation ranges are the min/max seen while the float model runs on the calibration inputs in
the LiteRT interpreter (every intermediate tensor kept), so the result is deterministic and
under our control (no private TFLite calibration API). Weights: per-channel symmetric int8 for
convolutions, per-tensor for fully-connected layers (what TFLite Micro kernels accept too);
biases int32 at ``input_scale * weight_scale``. Input and output tensors are int8.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from typing import Any

import numpy as np

from sdk.errors import ExportError
from sdk.optimize.tflite_ir import Graph, Op, Quant, serialize

# Ops whose int8 kernels need the output to share the input's scale and zero point.
SAME_AS_INPUT = {"RESHAPE", "TRANSPOSE", "MAX_POOL_2D", "AVERAGE_POOL_2D", "PAD", "PADV2", "MIRROR_PAD",
                 "STRIDED_SLICE", "SPLIT_V", "GATHER", "SPACE_TO_DEPTH", "RESIZE_NEAREST_NEIGHBOR",
                 "RESIZE_BILINEAR", "REDUCE_MAX"}
# Ops whose int8 kernels compare or copy raw values (XNNPack too): every input requantized to the
# output's parameters.
SAME_SCALE = {"MAXIMUM", "MINIMUM", "CONCATENATION"}
# Ops whose int8 kernels fix the output's (scale, zero point).
FIXED_OUTPUT = {"SOFTMAX": (1 / 256, -128), "LOGISTIC": (1 / 256, -128), "TANH": (1 / 128, 0)}
# Ops with no int8 kernel in LiteRT: they run in float between DEQUANTIZE and QUANTIZE.
FLOAT_ONLY = {"POW"}
WEIGHT_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3}


def iter_samples(calibration: Iterable[Any], names: list[str], shapes: list[tuple[int, ...]]
                 ) -> Iterator[list[np.ndarray]]:
    """Yield one list of float32 arrays (ONNX layout, batch 1) per sample, checking shapes.

    An item is an array (single-input models), a list/tuple of arrays or a dict name → array;
    arrays with a larger batch are split into single samples.
    """
    for n, item in enumerate(calibration):
        if isinstance(item, dict):
            arrays = [item[k] for k in names]
        elif isinstance(item, (list, tuple)):
            arrays = list(item)
        else:
            arrays = [item]
        arrays = [np.asarray(a, np.float32) for a in arrays]
        if len(arrays) != len(names):
            raise ExportError(f"calibration sample {n} has {len(arrays)} arrays, the model has "
                              f"{len(names)} inputs {names}")
        batch = arrays[0].shape[0] if arrays[0].ndim == len(shapes[0]) else 1
        for b in range(batch):
            sample = []
            for a, shape, name in zip(arrays, shapes, names):
                x = a[b:b + 1] if a.ndim == len(shape) else a[None]
                if tuple(x.shape[1:]) != tuple(shape[1:]):
                    raise ExportError(f"calibration sample {n}: input {name!r} has shape {tuple(a.shape)}, "
                                      f"the model expects {tuple(shape)} (ONNX layout)")
                sample.append(x)
            yield sample


def collect_ranges(graph: Graph, calibration: Iterable[Any]) -> dict[int, tuple[float, float]]:
    """Run the float graph on every sample; return tensor index → (min, max) of its values."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from sdk.optimize.tflite_export import to_tflite_layout

    interp = Interpreter(model_content=serialize(graph), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    inputs = interp.get_input_details()
    names = [d["name"] for d in inputs]
    shapes = [graph_shape_onnx(graph, d["index"]) for d in inputs]
    wanted = [i for i, t in enumerate(graph.tensors) if t.data is None and t.dtype == np.float32]
    lo = {i: np.inf for i in wanted}
    hi = {i: -np.inf for i in wanted}
    count = 0
    for sample in iter_samples(calibration, names, shapes):
        for d, x in zip(inputs, sample):
            interp.set_tensor(d["index"], to_tflite_layout(x))
        interp.invoke()
        for i in wanted:
            v = interp.get_tensor(i)
            lo[i] = min(lo[i], float(v.min()))
            hi[i] = max(hi[i], float(v.max()))
        count += 1
    if count == 0:
        raise ExportError("int8 export: the calibration data is empty; pass at least one input sample")
    return {i: (lo[i], hi[i]) for i in wanted}


def graph_shape_onnx(graph: Graph, index: int) -> tuple[int, ...]:
    """The ONNX-layout shape of a graph input (inverse of the channels-last move)."""
    s = graph.tensors[index].shape
    if len(s) == 4:
        return (s[0], s[3], s[1], s[2])
    if len(s) == 3:
        return (s[0], s[2], s[1])
    return tuple(s)


def activation_quant(lo: float, hi: float) -> Quant:
    """Asymmetric int8 parameters covering [lo, hi] and zero."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / 255.0, 1e-8)
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    return Quant(np.array([scale], np.float32), np.array([zp], np.int64))


def quantize_weights(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, Quant]:
    """Symmetric int8 weights, per channel along ``axis`` (or per tensor when None)."""
    if axis is None:
        amax = np.array([np.abs(w).max()], np.float32)
        scale = np.maximum(amax / 127.0, 1e-12)
        q = np.clip(np.round(w / scale[0]), -127, 127).astype(np.int8)
        return q, Quant(scale, np.zeros(1, np.int64), 0)
    moved = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
    scale = np.maximum(np.abs(moved).max(axis=1) / 127.0, 1e-12).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, Quant(scale, np.zeros(len(scale), np.int64), axis)


def quantize_graph(graph: Graph, calibration: Iterable[Any], float_nodes: Collection[str] = ()) -> Graph:
    """Turn ``graph`` (float) into a full-integer int8 graph in place, calibrated on the samples.

    Ops without an int8 kernel (:data:`FLOAT_ONLY`) and the ops made from the ONNX nodes named in
    ``float_nodes`` (mixed precision: e.g. a stem whose activations int8 cannot resolve) stay
    float between a DEQUANTIZE and a QUANTIZE."""
    ranges = collect_ranges(graph, calibration)
    tensors = graph.tensors
    ops: list[Op] = []
    float_ok: set[int] = set()

    def set_act(i: int, q: Quant) -> None:
        tensors[i].quant, tensors[i].dtype = q, np.dtype(np.int8)

    def convert(i: int, code: str, q: Quant | None) -> int:
        """A QUANTIZE (to ``q``) or DEQUANTIZE (``q`` None) of tensor ``i``; returns the new tensor."""
        j = graph.add_tensor(f"{tensors[i].name}/{code.lower()}", tensors[i].shape)
        if q is not None:
            set_act(j, q)
        else:
            float_ok.add(j)
        ops.append(Op(code, [i], [j]))
        return j

    for i in graph.inputs:
        set_act(i, activation_quant(*ranges[i]))
    for op in graph.ops:
        live = [k for k, i in enumerate(op.inputs) if tensors[i].data is None]
        if op.code in FLOAT_ONLY or (op.onnx_node and op.onnx_node in float_nodes):
            for k in live:
                if tensors[op.inputs[k]].dtype == np.int8:
                    op.inputs[k] = convert(op.inputs[k], "DEQUANTIZE", None)
            float_ok.update(op.outputs + [i for i in op.inputs if tensors[i].data is not None])
            ops.append(op)
            continue
        for k in live:
            if op.inputs[k] in float_ok:
                op.inputs[k] = convert(op.inputs[k], "QUANTIZE", activation_quant(*ranges[op.inputs[k]]))
        x = op.inputs[2] if op.code == "TRANSPOSE_CONV" else op.inputs[0]
        shared = same_scale(op, ranges, [op.inputs[k] for k in live]) if op.code in SAME_SCALE else None
        for out in op.outputs:
            if shared is not None:
                set_act(out, shared)
            elif op.code in SAME_AS_INPUT:
                set_act(out, tensors[x].quant)  # type: ignore[arg-type]
            elif op.code in FIXED_OUTPUT:
                set_act(out, Quant(np.array([FIXED_OUTPUT[op.code][0]], np.float32),
                                   np.array([FIXED_OUTPUT[op.code][1]], np.int64)))
            else:
                set_act(out, activation_quant(*ranges[out]))
        if shared is not None:
            for k in live:
                q = tensors[op.inputs[k]].quant
                if q is None or not (np.array_equal(q.scale, shared.scale)
                                     and np.array_equal(q.zero_point, shared.zero_point)):
                    op.inputs[k] = convert(op.inputs[k], "QUANTIZE", shared)
        if op.code in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            quantize_layer(graph, op.inputs, WEIGHT_AXIS.get(op.code))
        elif op.code == "TRANSPOSE_CONV":
            quantize_layer(graph, [op.inputs[2], op.inputs[1], op.inputs[3]], 0)
        else:
            for k, i in enumerate(op.inputs):
                t = tensors[i]
                if t.data is not None and t.dtype == np.float32:  # constant operands (ADD, MAXIMUM, PAD value...)
                    q = shared or (tensors[x].quant if op.code == "PADV2" else
                                   activation_quant(float(t.data.min()), float(t.data.max())))
                    with np.errstate(over="ignore"):  # e.g. max-pool padding of -3e38 saturates to -128
                        t.data = np.clip(np.round(t.data / q.scale[0]) + q.zero_point[0], -128, 127).astype(np.int8)
                    t.dtype, t.quant = np.dtype(np.int8), q
        ops.append(op)
    graph.ops = ops
    leftover = [t.name for i, t in enumerate(tensors) if t.dtype == np.float32 and i not in float_ok]
    if leftover:
        raise ExportError(f"int8 export: tensors left in float: {leftover[:5]} (an op without an int8 rule)")
    return graph


def same_scale(op: Op, ranges: dict[int, tuple[float, float]], live: list[int]) -> Quant:
    """One quantization for the inputs and output of an op whose int8 kernel compares raw values."""
    lo = min([ranges[i][0] for i in live + op.outputs if i in ranges], default=0.0)
    hi = max([ranges[i][1] for i in live + op.outputs if i in ranges], default=0.0)
    return activation_quant(lo, hi)


def quantize_layer(graph: Graph, inputs: list[int], axis: int | None) -> None:
    x, w_i, b_i = inputs[0], inputs[1], inputs[2]
    w, b = graph.tensors[w_i], graph.tensors[b_i]
    q, wq = quantize_weights(w.data, axis)  # type: ignore[arg-type]
    w.data, w.dtype, w.quant = q, np.dtype(np.int8), wq
    bias_scale = (graph.tensors[x].quant.scale[0] * wq.scale).astype(np.float32)  # type: ignore[union-attr]
    b.data = np.round(b.data / bias_scale).astype(np.int32)  # type: ignore[operator]
    b.dtype = np.dtype(np.int32)
    b.quant = Quant(bias_scale, np.zeros(len(bias_scale), np.int64), 0)
