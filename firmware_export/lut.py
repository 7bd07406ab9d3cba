"""Elementwise int8 -> int8 operators as 256-byte tables taken from LiteRT's reference kernels.

LOGISTIC, TANH, HARD_SWISH and LEAKY_RELU on int8 are functions of the input byte alone (their
quantization is fixed per tensor), so the exporter runs the operator itself: a one-operator copy of it
(same code, version, options and quantization) through LiteRT's reference interpreter on all 256
inputs. The table is bit-exact by construction, and the kernel is one load per element.
"""

from __future__ import annotations

import numpy as np

from firmware_export import oracle
from firmware_export.tflite_model import Model, Op
from sdk.errors import ExportError

LUT_OPS = {"LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU"}  # ELU: LiteRT has no reference kernel


def one_op_model(raw: bytes, index: int) -> bytes:
    """Operator ``index`` of subgraph 0 alone, on a 1-D tensor of the 256 int8 values."""
    import copy

    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(raw, 0))
    sg = m.subgraphs[0]
    op = copy.deepcopy(sg.operators[index])
    tensors = []
    for i, tid in enumerate((op.inputs[0], op.outputs[0])):
        t = copy.deepcopy(sg.tensors[tid])
        t.shape, t.shapeSignature, t.buffer, t.name = [256], None, i + 1, f"t{i}"
        tensors.append(t)
    out = s.ModelT()
    out.version = m.version
    out.operatorCodes = [m.operatorCodes[op.opcodeIndex]]
    out.buffers = [s.BufferT() for _ in range(3)]
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    g = s.SubGraphT()
    g.tensors, g.operators, g.inputs, g.outputs = tensors, [op], [0], [1]
    out.subgraphs = [g]
    b = flatbuffers.Builder(1024)
    b.Finish(out.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def table(model: Model, op: Op) -> np.ndarray:
    """The 256 outputs of ``op`` for inputs -128..127, indexed by the input byte ((uint8_t)x)."""
    x, y = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    if x.dtype != "int8" or y.dtype != "int8" or len(op.inputs) != 1:
        raise ExportError(f"{op.code} is supported on one int8 input with an int8 output")
    values = np.arange(-128, 128, dtype=np.int8)[None, :]
    got = oracle.litert_outputs(one_op_model(model.raw, op.index), values)[0]
    return np.roll(got.astype(np.int8), -128)  # entry (uint8_t)x
