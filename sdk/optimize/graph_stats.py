"""Static per-layer figures of an ONNX graph: MACs, parameters, output sizes, and the peak
activation memory from tensor liveness over the topological order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ModelError


@dataclass
class LayerStat:
    name: str
    op_type: str
    macs: int
    params: int
    output_shape: list[int]
    output_bytes: int


def _elem_size(elem_type: int) -> int:
    from onnx import helper

    try:
        return int(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).itemsize)
    except (KeyError, TypeError):
        return 4


def load_inferred(model_path: str | Path) -> Any:
    import onnx
    from onnx import shape_inference

    try:
        return shape_inference.infer_shapes(onnx.load(str(model_path)))
    except Exception as e:  # noqa: BLE001 - onnx raises DecodeError, ValidationError, OSError...
        raise ModelError(f"{model_path}: not a readable ONNX model ({e})") from None


def tensor_infos(model: Any) -> dict[str, tuple[list[int], int]]:
    """Tensor name → (shape with unknown dims as 1, bytes per element)."""
    g = model.graph
    out: dict[str, tuple[list[int], int]] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        t = vi.type.tensor_type
        out[vi.name] = ([d.dim_value if d.dim_value > 0 else 1 for d in t.shape.dim], _elem_size(t.elem_type))
    for init in g.initializer:
        out[init.name] = (list(init.dims), _elem_size(init.data_type))
    return out


def _node_macs(node: Any, infos: dict[str, tuple[list[int], int]], inits: dict[str, list[int]]) -> int:
    out_shape = infos.get(node.output[0], ([], 4))[0] if node.output else []
    out_elems = int(np.prod(out_shape)) if out_shape else 0
    if node.op_type in ("Conv", "ConvInteger", "QLinearConv") and len(node.input) > 1:
        w = inits.get(node.input[1 if node.op_type != "QLinearConv" else 3]) or infos.get(node.input[1], ([],))[0]
        return out_elems * int(np.prod(w[1:])) if w else 0
    if node.op_type == "ConvTranspose" and len(node.input) > 1:
        w = inits.get(node.input[1]) or infos.get(node.input[1], ([],))[0]
        in_elems = int(np.prod(infos.get(node.input[0], ([0],))[0]))
        return in_elems * int(np.prod(w[1:])) if w else 0
    if node.op_type in ("Gemm", "MatMul", "MatMulInteger"):
        a = infos.get(node.input[0], ([],))[0]
        if not a:
            return 0
        trans_a = any(at.name == "transA" and at.i for at in node.attribute)
        k = a[-2] if trans_a else a[-1]
        return out_elems * int(k)
    return 0


def layer_stats(model_path: str | Path, model: Any = None) -> list[LayerStat]:
    """One :class:`LayerStat` per node in graph order (params count each initializer once)."""
    model = model if model is not None else load_inferred(model_path)
    infos = tensor_infos(model)
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    seen: set[str] = set()
    stats = []
    for i, node in enumerate(model.graph.node):
        params = 0
        for name in node.input:
            if name in inits and name not in seen:
                seen.add(name)
                params += int(np.prod(inits[name])) if inits[name] else 1
        shape, size = infos.get(node.output[0], ([], 4)) if node.output else ([], 4)
        stats.append(LayerStat(node.name or f"{node.op_type}_{i}", node.op_type, _node_macs(node, infos, inits),
                               params, shape, int(np.prod(shape)) * size if shape else 0))
    return stats


def peak_activation_bytes(model_path: str | Path, model: Any = None) -> tuple[int, int]:
    """(peak bytes of simultaneously live activations, bytes of the largest activation).

    A tensor lives from the step that produces it (graph inputs: step 0) through its last use
    (graph outputs: the end); initializers are weights, not activations.
    """
    model = model if model is not None else load_inferred(model_path)
    g = model.graph
    infos = tensor_infos(model)
    inits = {i.name for i in g.initializer}

    def nbytes(name: str) -> int:
        shape, size = infos.get(name, ([], 4))
        return int(np.prod(shape)) * size if shape else size

    born: dict[str, int] = {i.name: 0 for i in g.input if i.name not in inits}
    last: dict[str, int] = {}
    for step, node in enumerate(g.node):
        for name in node.output:
            if name:
                born.setdefault(name, step)
        for name in node.input:
            if name and name not in inits:
                last[name] = step
    end = len(g.node)
    for o in g.output:
        last[o.name] = end
    sizes = {name: nbytes(name) for name in born}
    peak = 0
    for step in range(max(end, 1)):
        live = sum(sizes[n] for n, b in born.items() if b <= step <= last.get(n, b))
        peak = max(peak, live)
    return peak, max(sizes.values(), default=0)
