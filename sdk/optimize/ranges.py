"""Activation ranges of an fp32 model on real data, and the nodes fp16 cannot hold.

One ONNX Runtime pass over a few samples with every float intermediate tensor made an output
(graph optimizations off, so every tensor exists). fp16 tops out at 65504: a node that reads or
writes a tensor beyond :data:`FP16_LIMIT` on the calibration data (a power spectrum at int16
scale reaches 1e12) stays float32 in the fp16 tier, with casts around it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sdk.optimize.data import Dataset

FP16_LIMIT = 65504.0 / 4  # headroom: sums and products of in-range values still fit


def _instrumented(model_path: Path) -> tuple[Any, list[str]]:
    """A 1-thread ONNX Runtime session that also returns every float intermediate tensor."""
    import onnx
    import onnxruntime as ort

    from sdk.optimize.graph_stats import load_inferred

    model = load_inferred(model_path)
    g = model.graph
    floats = {v.name for v in list(g.value_info) + list(g.output)
              if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    outputs = {o.name for o in g.output}
    names = [o for n in g.node for o in n.output if o in floats]
    for name in names:
        if name not in outputs:
            g.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]), names


def activation_ranges(model_path: str | Path, data: Dataset, limit: int = 8) -> dict[str, tuple[float, float]]:
    """(min, max) of the model input and every float tensor over the first ``limit`` samples."""
    sess, names = _instrumented(Path(model_path))
    inp = sess.get_inputs()[0].name
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    for x in data.samples(limit):
        for n, a in zip([inp, *names], [x, *sess.run(names, {inp: x})]):
            if a.size:
                lo[n], hi[n] = min(lo.get(n, np.inf), float(a.min())), max(hi.get(n, -np.inf), float(a.max()))
    return {n: (lo[n], hi[n]) for n in lo}


def fp16_unsafe_nodes(model_path: str | Path, data: Dataset, limit: int = 8, bound: float = FP16_LIMIT
                      ) -> list[str]:
    """Nodes reading or writing a tensor whose magnitude exceeds ``bound`` on ``data``."""
    import onnx

    ranges = activation_ranges(model_path, data, limit)
    big = {n for n, (lo, hi) in ranges.items() if max(abs(lo), abs(hi)) > bound or not np.isfinite([lo, hi]).all()}
    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.name and big & ({*n.input} | {*n.output})]
