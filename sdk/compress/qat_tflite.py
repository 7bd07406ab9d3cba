"""A LiteRT int8 ``.tflite`` that carries a QAT model's *learned* quantization (no recalibration).

    from sdk.compress.qat import export_qdq
    from sdk.compress.qat_tflite import qdq_to_tflite
    export_qdq(q, "m.int8.onnx", x[:1])                 # ONNX Runtime int8 (QDQ, the learned scales)
    qdq_to_tflite("m.int8.onnx", "m.int8.tflite")        # LiteRT int8 on the same int8 grid

The QDQ model written by :func:`sdk.compress.qat.export_qdq` is read back: every activation's
``QuantizeLinear`` gives that tensor's (scale, zero point), every layer's ``DequantizeLinear`` on an
initializer gives its int8 weights (per output channel) and int32 bias. The Q/DQ pairs are removed, the
float graph goes through the SDK's own ONNX → TFLite converter (:mod:`sdk.optimize.tflite_export`) and
its int8 pass (:func:`sdk.optimize.tflite_quant.quantize_graph`, for the int8 graph structure), and then
every activation, weight and bias tensor gets the QAT model's parameters. Fully-connected weights keep
their per-channel scales (LiteRT's int8 FULLY_CONNECTED kernel accepts them). What can differ from
ONNX Runtime is the requantization arithmetic only (LiteRT: a fixed-point multiplier; ONNX Runtime:
float32), so outputs agree within one step of the output scale (tested), not always bit for bit.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ExportError

LAYERS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
FOLLOW_INPUT = ("RESHAPE", "PAD")  # int8 kernels that keep their input's (scale, zero point)


@dataclass
class Grid:
    """The QAT model's int8 grid as read from its QDQ file."""

    act: dict[str, tuple[float, int]] = field(default_factory=dict)  # tensor -> (scale, zero point)
    weight_scale: dict[str, np.ndarray] = field(default_factory=dict)  # Conv/Gemm node -> per-channel scales
    bias: dict[str, np.ndarray] = field(default_factory=dict)  # Conv/Gemm node -> int32 bias


def strip_qdq(qdq_path: str | Path, float_path: str | Path) -> Grid:
    """Write the float twin of a QDQ model (weights dequantized, Q/DQ pairs removed) to ``float_path``
    and return the int8 grid it had."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(qdq_path))
    g = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    consts.update({n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in g.node if n.op_type == "Constant"})
    grid, rename, keep, inits = Grid(), {}, [], {}
    for n in g.node:
        if n.op_type == "Identity" and n.input[0] in consts:  # torch shares equal initializers this way
            consts[n.output[0]] = consts[n.input[0]]
            continue
        if n.op_type == "DequantizeLinear" and n.input[0] in consts:  # a weight or a bias
            q, s = consts[n.input[0]], consts[n.input[1]].astype(np.float32)
            axis_shape = (-1, *([1] * (q.ndim - 1))) if s.size > 1 else (1,) * max(q.ndim, 1)
            inits[n.output[0]] = ((q.astype(np.float64)) * s.reshape(axis_shape)).astype(np.float32)
            inits[n.output[0] + "#q"] = q
            inits[n.output[0] + "#s"] = s
        elif n.op_type == "QuantizeLinear":
            grid.act[n.input[0]] = (float(consts[n.input[1]]), int(consts[n.input[2]]))
        elif n.op_type == "DequantizeLinear":  # of a QuantizeLinear: the float tensor itself
            rename[n.output[0]] = next(p.input[0] for p in g.node if p.output[0] == n.input[0])
        elif n.op_type != "Constant":
            keep.append(n)
    outputs = {o.name for o in g.output}
    for dq_out, src in list(rename.items()):  # a graph output keeps its name: the float tensor takes it
        if dq_out in outputs:
            for n in keep:
                n.output[:] = [dq_out if o == src else o for o in n.output]
            grid.act[dq_out] = grid.act.pop(src)
            rename = {k: (dq_out if v == src else v) for k, v in rename.items() if k != dq_out}
    for n in keep:
        n.input[:] = [rename.get(i, i) for i in n.input]
        if n.op_type == "Relu" and n.output[0] in grid.act:  # fused into the layer before it by the converter
            grid.act.setdefault(n.input[0], grid.act[n.output[0]])
        if n.op_type in ("Conv", "Gemm"):
            if n.input[1] + "#s" not in inits:
                raise ExportError(f"{qdq_path}: layer {n.name!r} has float weights, no QAT int8 grid; give the "
                                  "QDQ model written by sdk.compress.qat.export_qdq")
            grid.weight_scale[n.name] = inits[n.input[1] + "#s"]
            if len(n.input) > 2 and n.input[2]:
                grid.bias[n.name] = inits[n.input[2] + "#q"].astype(np.int32)
    used = {i for n in keep for i in n.input}
    new = [numpy_helper.from_array(v, k) for k, v in inits.items() if "#" not in k and k in used]
    new += [numpy_helper.from_array(v, k) for k, v in consts.items() if k in used and k not in inits]
    graph = helper.make_graph(keep, g.name, list(g.input), list(g.output), new)
    out = helper.make_model(graph, opset_imports=list(model.opset_import))
    onnx.save(out, str(float_path))
    return grid


def qdq_to_tflite(qdq_path: str | Path, out_path: str | Path) -> Path:
    """A full-integer LiteRT ``.tflite`` (int8 input and output) on the QDQ model's int8 grid."""
    from sdk.optimize.tflite_export import onnx_to_graph
    from sdk.optimize.tflite_ir import serialize
    from sdk.optimize.tflite_quant import quantize_graph

    if not Path(qdq_path).is_file():
        raise ExportError(f"{qdq_path}: QDQ model not found (write it with sdk.compress.qat.export_qdq)")
    with tempfile.TemporaryDirectory() as tmp:
        fp = Path(tmp) / "float.onnx"
        grid = strip_qdq(qdq_path, fp)
        graph = onnx_to_graph(fp)
    floats = {i: t.data.copy() for i, t in enumerate(graph.tensors) if t.data is not None}
    shapes = [graph.tensors[i].shape for i in graph.inputs]
    sample = [np.random.default_rng(0).normal(0, 1, _onnx_shape(s)).astype(np.float32) for s in shapes]
    quantize_graph(graph, [sample])  # the int8 structure; every range is replaced below
    apply_grid(graph, grid, floats)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(serialize(graph, description=f"ember QAT: {Path(qdq_path).name}"))
    return out


def _onnx_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[0], shape[3], shape[1], shape[2]) if len(shape) == 4 else tuple(shape)


def apply_grid(graph: Any, grid: Grid, floats: dict[int, np.ndarray]) -> None:
    """Give the int8 graph's activations, weights and biases the QAT grid (in place)."""
    from sdk.optimize.tflite_ir import Quant

    t = graph.tensors

    def act(i: int, where: str) -> None:
        if t[i].name not in grid.act:
            raise ExportError(f"QAT LiteRT export: tensor {t[i].name!r} ({where}) has no QAT scale; "
                              "only graphs that quantize_aware supports can be exported")
        s, zp = grid.act[t[i].name]
        t[i].quant = Quant(np.array([s], np.float32), np.array([zp], np.int64))

    for i in graph.inputs:
        act(i, "input")
    for op in graph.ops:
        if op.code in FOLLOW_INPUT:
            q = t[op.outputs[0]].quant = t[op.inputs[0]].quant
            s, zp = grid.act.get(t[op.outputs[0]].name, (q.scale[0], q.zero_point[0]))
            if not (q.scale[0] == np.float32(s) and q.zero_point[0] == zp):
                raise ExportError(f"QAT LiteRT export: {op.code} {t[op.outputs[0]].name!r} changes the grid")
            continue
        act(op.outputs[0], f"output of {op.code}")
        if op.code in LAYERS:
            _layer(graph, op, grid, floats)


def _layer(graph: Any, op: Any, grid: Grid, floats: dict[int, np.ndarray]) -> None:
    from sdk.optimize.tflite_ir import Quant

    t = graph.tensors
    node = op.onnx_node
    if node not in grid.weight_scale:
        raise ExportError(f"QAT LiteRT export: layer {node!r} has no QAT weight scales")
    w_i, b_i = op.inputs[1], op.inputs[2]
    axis = 3 if op.code == "DEPTHWISE_CONV_2D" else 0
    s = grid.weight_scale[node].astype(np.float32)
    shape = [1] * floats[w_i].ndim
    shape[axis] = -1
    w = t[w_i]
    w.data = np.clip(np.round(floats[w_i] / s.reshape(shape)), -127, 127).astype(np.int8)
    w.dtype, w.quant = np.dtype(np.int8), Quant(s, np.zeros(len(s), np.int64), axis)
    sx = t[op.inputs[0]].quant.scale[0]
    b = t[b_i]
    b.data = grid.bias[node] if node in grid.bias else np.zeros(len(s), np.int32)
    b.dtype, b.quant = np.dtype(np.int32), Quant((np.float32(sx) * s).astype(np.float32), np.zeros(len(s), np.int64), 0)
