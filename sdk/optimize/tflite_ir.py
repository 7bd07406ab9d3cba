"""A small in-memory TFLite graph (tensors + builtin ops) and its flatbuffer serializer.

The ONNX converter (``tflite_export``) builds a :class:`Graph`; the int8 pass (``tflite_quant``)
rewrites its tensors in place; :func:`serialize` writes the ``.tflite`` bytes with the
flatbuffers object API of ``ai_edge_litert.schema_py_generated`` (no TensorFlow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

NP_TO_TFL = {np.dtype(np.float32): 0, np.dtype(np.int32): 2, np.dtype(np.int8): 9, np.dtype(np.int64): 4}

# Operator versions that the int8 kernels declare (TFLite's op version table); float ops use 1.
INT8_VERSIONS = {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 4, "ADD": 2,
                 "AVERAGE_POOL_2D": 2, "MAX_POOL_2D": 2, "MEAN": 2, "SOFTMAX": 2, "RELU": 2,
                 "RELU6": 2, "PAD": 2, "TRANSPOSE": 2, "RESHAPE": 1, "CONCATENATION": 2, "MUL": 2,
                 "SUB": 2, "LOGISTIC": 2, "TANH": 2, "STRIDED_SLICE": 2, "SPLIT_V": 2, "GATHER": 2,
                 "SPACE_TO_DEPTH": 2, "RESIZE_NEAREST_NEIGHBOR": 2, "RESIZE_BILINEAR": 2, "LEAKY_RELU": 2,
                 "MAXIMUM": 2, "MINIMUM": 2, "REDUCE_MAX": 2, "TRANSPOSE_CONV": 3, "QUANTIZE": 2,
                 "DEQUANTIZE": 2, "PADV2": 2, "MIRROR_PAD": 2}


@dataclass
class Quant:
    """Affine quantization: real = scale * (q - zero_point); ``axis`` for per-channel weights."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int = 0


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))
    data: np.ndarray | None = None  # constant tensors only
    quant: Quant | None = None


@dataclass
class Op:
    code: str  # a BuiltinOperator name, e.g. "CONV_2D"
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)
    options_type: str | None = None  # e.g. "Conv2DOptions"
    onnx_node: str = ""  # the ONNX node this op came from (for error messages and reports)


@dataclass
class Graph:
    tensors: list[Tensor] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    def add_tensor(self, name: str, shape: tuple[int, ...] | list[int], data: np.ndarray | None = None,
                   dtype: Any = np.float32) -> int:
        """Append a tensor (a constant when ``data`` is given) and return its index."""
        if data is not None:
            data = np.ascontiguousarray(data)
            dtype = data.dtype
            shape = data.shape
        self.tensors.append(Tensor(name, tuple(int(s) for s in shape), np.dtype(dtype), data))
        return len(self.tensors) - 1

    def add_op(self, code: str, inputs: list[int], outputs: list[int], options_type: str | None = None,
               onnx_node: str = "", **options: Any) -> Op:
        op = Op(code, list(inputs), list(outputs), options, options_type, onnx_node)
        self.ops.append(op)
        return op

    def producer(self, tensor: int) -> Op | None:
        return next((op for op in self.ops if tensor in op.outputs), None)

    def consumers(self, tensor: int) -> list[Op]:
        return [op for op in self.ops if tensor in op.inputs]


def serialize(graph: Graph, description: str = "ember") -> bytes:
    """Write ``graph`` as ``.tflite`` flatbuffer bytes."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    buffers = [s.BufferT()]  # buffer 0 is the empty sentinel
    tensors = []
    for t in graph.tensors:
        tt = s.TensorT()
        tt.name = t.name.encode()
        tt.shape = np.array(t.shape, np.int32)
        tt.type = NP_TO_TFL[np.dtype(t.dtype)]
        if t.data is not None:
            b = s.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(t.data).astype(t.dtype).tobytes(), np.uint8)
            buffers.append(b)
            tt.buffer = len(buffers) - 1
        if t.quant is not None:
            q = s.QuantizationParametersT()
            q.scale = np.asarray(t.quant.scale, np.float32).ravel()
            q.zeroPoint = np.asarray(t.quant.zero_point, np.int64).ravel()
            q.quantizedDimension = int(t.quant.axis)
            tt.quantization = q
        tensors.append(tt)

    codes: list[tuple[str, int]] = []
    operators = []
    for op in graph.ops:
        int8 = any(graph.tensors[i].dtype == np.int8 for i in op.inputs[:1] + op.outputs[:1])
        if op.code == "TRANSPOSE_CONV":
            int8 = graph.tensors[op.inputs[2]].dtype == np.int8
        version = INT8_VERSIONS.get(op.code, 1) if int8 else 1
        key = (op.code, version)
        if key not in codes:
            codes.append(key)
        o = s.OperatorT()
        o.opcodeIndex = codes.index(key)
        o.inputs = np.array(op.inputs, np.int32)
        o.outputs = np.array(op.outputs, np.int32)
        if op.options_type:
            opts = getattr(s, op.options_type + "T")()
            for k, v in op.options.items():
                setattr(opts, k, v)
            o.builtinOptionsType = getattr(s.BuiltinOptions, op.options_type)
            o.builtinOptions = opts
        operators.append(o)

    sub = s.SubGraphT()
    sub.tensors, sub.operators = tensors, operators
    sub.inputs = np.array(graph.inputs, np.int32)
    sub.outputs = np.array(graph.outputs, np.int32)
    sub.name = b"main"
    model = s.ModelT()
    model.version = 3
    model.description = description.encode()
    model.subgraphs = [sub]
    model.buffers = buffers
    model.operatorCodes = []
    for code, version in codes:
        c = s.OperatorCodeT()
        c.builtinCode = getattr(s.BuiltinOperator, code)
        c.deprecatedBuiltinCode = min(c.builtinCode, 127)
        c.version = version
        model.operatorCodes.append(c)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
