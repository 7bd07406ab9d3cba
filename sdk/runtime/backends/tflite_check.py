"""A structural check of a ``.tflite`` flatbuffer before any interpreter touches it.

LiteRT trusts the file: a tensor index out of range, or a required input marked absent (-1, e.g.
FULLY_CONNECTED without weights), crashes the process inside ``allocate_tensors`` instead of
raising. ``tflite_problem(raw)`` walks the operators and tensors with the flatbuffers accessors
(cheap: no copy of the weights) and returns what is wrong, or None. The LiteRT backend and the C
exporter call it first and raise their own error type with the message.
"""

from __future__ import annotations

import math
from typing import Any

# Ops whose output has the type of their first input (LiteRT's kernels copy or compute in that type
# without checking: an int16 input to an int8 RESHAPE overruns the output buffer).
_SAME_TYPE = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "PAD", "PADV2", "MAX_POOL_2D", "AVERAGE_POOL_2D",
              "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "SUB", "MUL", "MEAN", "RELU", "RELU6",
              "CONCATENATION", "SLICE", "STRIDED_SLICE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"}
# Ops whose inputs 0/1 may legally be absent (-1): the recurrent family has many optional tensors.
_OPTIONAL_EARLY = {"LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "BIDIRECTIONAL_SEQUENCE_LSTM", "SVDF", "RNN",
                   "UNIDIRECTIONAL_SEQUENCE_RNN", "BIDIRECTIONAL_SEQUENCE_RNN", "CUSTOM"}


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:  # tflite_runtime ships no schema: nothing to check with
        return None
    return schema_py_generated


def tflite_problem(raw: bytes) -> str | None:
    """What makes ``raw`` unsafe to hand to an interpreter (None when nothing was found)."""
    s = _schema()
    if s is None:
        return None
    if len(raw) < 8 or raw[4:8] != b"TFL3":
        return "not a TFLite flatbuffer (no 'TFL3' identifier)"
    try:
        return _walk(s, s.Model.GetRootAsModel(raw, 0))
    except Exception as e:  # noqa: BLE001 - flatbuffers raises plain errors on offsets out of range
        return f"corrupt flatbuffer ({type(e).__name__}: {' '.join(str(e).split())[:120]})"


def _walk(s: Any, m: Any) -> str | None:
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}
    codes = []
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)
        codes.append(names.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), "CUSTOM"))
    if m.SubgraphsLength() == 0:
        return "the model has no subgraph"
    n_buffers = m.BuffersLength()
    for g in range(m.SubgraphsLength()):
        sg = m.Subgraphs(g)
        n = sg.TensorsLength()
        for t in range(n):
            problem = _tensor_problem(m, sg.Tensors(t), n_buffers)
            if problem:
                return f"subgraph {g} tensor {t} {problem}"
        for what, values in (("input", sg.InputsAsNumpy()), ("output", sg.OutputsAsNumpy())):
            bad = [int(x) for x in _ints(values) if not 0 <= x < n]
            if bad:
                return f"subgraph {g} {what} refers to tensor {bad[0]} (it has {n})"
        for k in range(sg.OperatorsLength()):
            problem = _op_problem(sg.Operators(k), codes, n, sg)
            if problem:
                return f"subgraph {g} op {k} {problem}"
    return None


def _tensor_problem(m: Any, t: Any, n_buffers: int) -> str | None:
    b = t.Buffer()
    if not 0 <= b < max(1, n_buffers):
        return f"uses buffer {b} (the model has {n_buffers})"
    if t.IsVariable() and b > 0 and m.Buffers(b).DataLength() > 0:
        return "is a variable tensor with constant data"
    q = t.Quantization()
    scale = q.ScaleAsNumpy() if q is not None and q.ScaleLength() else None
    if scale is not None and not all(s == 0 or (math.isfinite(s) and 1e-30 <= s <= 1e30) for s in scale.tolist()):
        return f"has quantization scale(s) {scale[:4].tolist()} (each must be finite, > 0 and > 1e-30)"
    return None


def _op_problem(op: Any, codes: list[str], n: int, sg: Any) -> str | None:
    idx = op.OpcodeIndex()
    if not 0 <= idx < len(codes):
        return f"uses operator code {idx} (the model has {len(codes)})"
    code = codes[idx]
    ins, outs = _ints(op.InputsAsNumpy()), _ints(op.OutputsAsNumpy())
    bad = [x for x in ins if not -1 <= x < n] + [x for x in outs if not 0 <= x < n]
    if bad:
        return f"({code}) refers to tensor {bad[0]} (the subgraph has {n})"
    if code not in _OPTIONAL_EARLY and any(x == -1 for x in ins[:2]):
        return f"({code}) lacks a required input (input {ins.index(-1)} is marked absent)"
    if code in _SAME_TYPE and ins and outs and sg.Tensors(ins[0]).Type() != sg.Tensors(outs[0]).Type():
        return (f"({code}) reads tensor type {sg.Tensors(ins[0]).Type()} but writes type "
                f"{sg.Tensors(outs[0]).Type()} (they must be the same)")
    return None


def _ints(values: Any) -> list[int]:
    return [] if isinstance(values, int) else [int(x) for x in values]
