"""Turn torch's fake-quant ONNX export into the QDQ form ONNX Runtime fuses into int8 kernels:
``QuantizeLinear`` on a float weight becomes an int8 initializer, and a float bias becomes int32
with scale ``x_scale * w_scale`` (round half to even, as the quantizer and the runtimes do)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ModelError


def _const(graph: Any, name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for n in graph.node:
        if n.op_type == "Constant" and n.output[0] == name:
            return numpy_helper.to_array(n.attribute[0].t)
        if n.op_type == "Identity" and n.output[0] == name:  # torch shares equal initializers this way
            return _const(graph, n.input[0])
    return None


def weight_qdq(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric int8 (±127): ``(int8 weights, float32 scales)``, the formula of
    :func:`sdk.compress.qat._weight_scales` in the same float32 arithmetic."""
    w = w.astype(np.float32)
    amax = np.abs(w.reshape(w.shape[0], -1)).max(1)
    s = np.where(amax > 0, amax / np.float32(127), np.float32(1)).astype(np.float32)
    q = np.clip(np.round(w / s.reshape(-1, *([1] * (w.ndim - 1)))), -127, 127).astype(np.int8)
    return q, s


def finalize_qdq(path: Path) -> None:
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    for node in [n for n in g.node if n.op_type in ("Conv", "Gemm")]:
        w = _const(g, node.input[1])
        if w is None:
            raise ModelError(f"QAT export: {node.name} has no constant weight")
        wq, s = weight_qdq(w)
        name = f"{node.name}_weight"
        g.initializer.extend([numpy_helper.from_array(wq, name + "_int8"), numpy_helper.from_array(s, name + "_scale"),
                              numpy_helper.from_array(np.zeros_like(s, np.int8), name + "_zp")])
        g.node.append(helper.make_node("DequantizeLinear", [name + "_int8", name + "_scale", name + "_zp"],
                                       [name + "_dq"], axis=0, name=name + "_DequantizeLinear"))
        node.input[1] = name + "_dq"
    producer = {o: n for n in g.node for o in n.output}
    for node in [n for n in g.node if n.op_type in ("Conv", "Gemm")]:  # Flatten between DQ and Gemm: re-quantize
        flat = producer.get(node.input[0])
        dq = producer.get(flat.input[0]) if flat is not None and flat.op_type in ("Flatten", "Reshape") else None
        if dq is not None and dq.op_type == "DequantizeLinear":
            out = flat.output[0]
            g.node.extend([helper.make_node("QuantizeLinear", [out, *dq.input[1:]], [out + "_q"], name=out + "_Q"),
                           helper.make_node("DequantizeLinear", [out + "_q", *dq.input[1:]], [out + "_dq"],
                                            name=out + "_DQ")])
            node.input[0] = out + "_dq"
    producer = {o: n for n in g.node for o in n.output}
    for node in [n for n in g.node if n.op_type in ("Conv", "Gemm") and len(n.input) > 2]:
        b = _const(g, node.input[2])
        dx, dw = producer.get(node.input[0]), producer.get(node.input[1])
        if b is None or dx is None or dw is None or dx.op_type != "DequantizeLinear" or dw.op_type != "DequantizeLinear":
            raise ModelError(f"QAT export: {node.name} is not between DequantizeLinear nodes; cannot quantize its bias")
        scale = (np.float32(_const(g, dx.input[1])) * _const(g, dw.input[1]).astype(np.float32)).astype(np.float32)
        bq = np.round(b.astype(np.float32) / scale).astype(np.int32)
        name = f"{node.name}_bias"
        g.initializer.extend([numpy_helper.from_array(bq, name + "_int32"), numpy_helper.from_array(scale, name + "_scale"),
                              numpy_helper.from_array(np.zeros_like(bq), name + "_zp")])
        g.node.append(helper.make_node("DequantizeLinear", [name + "_int32", name + "_scale", name + "_zp"],
                                       [name + "_dq"], axis=0, name=name + "_DequantizeLinear"))
        node.input[2] = name + "_dq"
    from sdk.optimize.quantize import drop_unused_initializers

    model = _toposort(model)
    onnx.save(model, str(path))
    drop_unused_initializers(path)


def _toposort(model: Any) -> Any:
    g = model.graph
    ready = {i.name for i in g.input} | {i.name for i in g.initializer} | {""}
    todo, order = list(g.node), []
    while todo:
        progress = False
        for n in list(todo):
            if all(i in ready for i in n.input):
                order.append(n)
                ready.update(n.output)
                todo.remove(n)
                progress = True
        if not progress:
            raise ModelError("QAT export: the graph has a cycle or an undefined input")
    del g.node[:]
    g.node.extend(order)
    return model
