"""Hand-built int8 ``.tflite`` models (the flatbuffers object API of ``ai_edge_litert``'s schema), for
operators the project's ONNX converter does not emit: tests build exact shapes, strides, paddings and
per-channel quantization with it.

    b = Builder()
    x = b.tensor([1, 7, 9, 6], scale=0.05, zp=3)
    parts = b.op("SPLIT", [b.const([3], np.int32), x], [b.tensor(...) for _ in range(3)], num_splits=3)
    b.save(path, inputs=[x], outputs=[...])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

_TYPES = {np.dtype(np.int8): "INT8", np.dtype(np.int32): "INT32", np.dtype(np.int16): "INT16",
          np.dtype(np.int64): "INT64", np.dtype(np.float32): "FLOAT32"}
_VERSIONS = {"CONCATENATION": 2, "STRIDED_SLICE": 4, "SPLIT": 2, "SPLIT_V": 2, "RESIZE_NEAREST_NEIGHBOR": 3,
             "TRANSPOSE_CONV": 3, "SLICE": 2, "FULLY_CONNECTED": 7, "CONV_2D": 4, "DEPTHWISE_CONV_2D": 5,
             "RESHAPE": 1}


class Builder:
    def __init__(self) -> None:
        from ai_edge_litert import schema_py_generated as s

        self.s = s
        self.m = s.ModelT()
        self.m.version, self.m.description = 3, "ember tflite_builder"
        self.m.buffers, self.m.operatorCodes = [s.BufferT()], []
        self.sg = s.SubGraphT()
        self.sg.tensors, self.sg.operators = [], []

    def tensor(self, shape: list[int], dtype: Any = np.int8, scale: float | list[float] | None = None,
               zp: int | list[int] = 0, data: np.ndarray | None = None, axis: int = 0, name: str = "") -> int:
        """A tensor (``data``: a constant); per-channel when ``scale`` is a list (``axis``)."""
        s = self.s
        t = s.TensorT()
        t.shape, t.type = list(shape), getattr(s.TensorType, _TYPES[np.dtype(dtype)])
        t.name = name or f"t{len(self.sg.tensors)}"
        t.buffer = 0
        if data is not None:
            buf = s.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data, dtype).tobytes(), np.uint8).tolist()
            self.m.buffers.append(buf)
            t.buffer = len(self.m.buffers) - 1
        if scale is not None:
            q = s.QuantizationParametersT()
            scales = [float(v) for v in np.atleast_1d(scale)]
            q.scale = scales
            q.zeroPoint = [int(v) for v in np.broadcast_to(np.atleast_1d(zp), (len(scales),))]
            q.quantizedDimension = axis
            t.quantization = q
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def const(self, values: Any, dtype: Any = np.int32, **quant: Any) -> int:
        a = np.asarray(values, dtype)
        return self.tensor(list(a.shape), dtype, data=a, **quant)

    def op(self, code: str, inputs: list[int], outputs: list[int], **options: Any) -> list[int]:
        """Append operator ``code``; ``options`` are fields of its ``*OptionsT`` (camelCase)."""
        s = self.s
        oc = s.OperatorCodeT()
        oc.builtinCode = getattr(s.BuiltinOperator, code)
        oc.deprecatedBuiltinCode = min(oc.builtinCode, 127)
        oc.version = _VERSIONS.get(code, 2)
        self.m.operatorCodes.append(oc)
        op = s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = len(self.m.operatorCodes) - 1, list(inputs), list(outputs)
        cls = "".join(w.capitalize() for w in code.split("_")) + "OptionsT"
        cls = {"ResizeNearestNeighborOptionsT": "ResizeNearestNeighborOptionsT", "SplitVOptionsT": "SplitVOptionsT",
               "Conv2dOptionsT": "Conv2DOptionsT", "DepthwiseConv2dOptionsT": "DepthwiseConv2DOptionsT",
               "ConcatenationOptionsT": "ConcatenationOptionsT"}.get(cls, cls)
        if hasattr(s, cls):
            opts = getattr(s, cls)()
            for k, v in options.items():
                setattr(opts, k, v)
            op.builtinOptionsType = getattr(s.BuiltinOptions, cls[:-1])
            op.builtinOptions = opts
        self.sg.operators.append(op)
        return list(outputs)

    def save(self, path: str | Path, inputs: list[int], outputs: list[int]) -> Path:
        import flatbuffers

        self.sg.inputs, self.sg.outputs = list(inputs), list(outputs)
        self.m.subgraphs = [self.sg]
        b = flatbuffers.Builder(1024)
        b.Finish(self.m.Pack(b), file_identifier=b"TFL3")
        Path(path).write_bytes(bytes(b.Output()))
        return Path(path)
