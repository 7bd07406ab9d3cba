"""Read a ``.tflite`` flatbuffer into a small graph (tensors, ops, constants) for the C exporter.

Uses the flatbuffers object API of ``ai_edge_litert.schema_py_generated`` (no TensorFlow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ExportError

# TensorType enum value -> numpy dtype (the types an int8 model carries).
_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_,
           7: np.int16, 9: np.int8, 10: np.float64}
_TYPE_NAMES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
               7: "int16", 9: "int8", 10: "float64"}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # "int8", "int32", "float32", ...
    scale: np.ndarray | None = None  # float32 scales (one, or one per channel)
    zero_point: np.ndarray | None = None
    quant_axis: int = 0
    data: np.ndarray | None = None  # constant tensors only
    dynamic: bool = False  # shape_signature has -1 beyond a batch of 1 (see _is_dynamic)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def qparams(self) -> tuple[float, int]:
        """(scale, zero_point) of a per-tensor quantized tensor."""
        if self.scale is None or len(self.scale) == 0:
            raise ExportError(f"tensor {self.name!r} has no quantization parameters")
        return float(self.scale[0]), int(self.zero_point[0]) if self.zero_point is not None else 0


@dataclass
class Op:
    index: int
    code: str  # BuiltinOperator name, e.g. "CONV_2D"
    version: int
    inputs: list[int]  # -1 = optional input left out
    outputs: list[int]
    options: Any = None  # the schema's *OptionsT object (or None)

    def opt(self, name: str, default: Any = None) -> Any:
        return getattr(self.options, name, default) if self.options is not None else default


@dataclass
class Model:
    path: Path | None
    raw: bytes
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    subgraphs: int = 1
    description: str = ""
    op_codes: list[str] = field(default_factory=list)

    def consumers(self, tensor: int) -> list[Op]:
        return [op for op in self.ops if tensor in op.inputs]

    def is_const(self, tensor: int) -> bool:
        return tensor >= 0 and self.tensors[tensor].data is not None


def _builtin_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as s

    return {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def load(model: str | Path | bytes) -> Model:
    """Parse a ``.tflite`` file (or its bytes). Raises ExportError for unreadable files."""
    try:
        from ai_edge_litert import schema_py_generated as s
    except ImportError as e:  # pragma: no cover - dependency of the package
        raise ExportError("reading .tflite needs ai-edge-litert: pip install 'ember-edge[litert]'") from e
    path = None
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise ExportError(f"{path}: no such model file")
        raw = path.read_bytes()
    else:
        raw = bytes(model)
    where = str(path) if path else "<bytes>"
    if len(raw) < 8 or raw[4:8] != b"TFL3":
        raise ExportError(f"{where}: not a TFLite flatbuffer (no 'TFL3' identifier); "
                          "convert ONNX with sdk.optimize.tflite_export.onnx_to_tflite(..., int8=True)")
    try:
        m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(raw, 0))
    except Exception as e:  # flatbuffers raises plain errors on corrupt input
        raise ExportError(f"{where}: corrupt TFLite flatbuffer ({e})") from e
    names = _builtin_names()
    codes = []
    for oc in m.operatorCodes or []:
        code = max(int(oc.builtinCode or 0), int(oc.deprecatedBuiltinCode or 0))
        codes.append(names.get(code, f"BUILTIN_{code}") if code != 32 else f"CUSTOM:{_str(oc.customCode)}")
    sg = m.subgraphs[0]
    tensors = [_tensor(i, t, m.buffers) for i, t in enumerate(sg.tensors or [])]
    ops = []
    for i, o in enumerate(sg.operators or []):
        oc = m.operatorCodes[o.opcodeIndex]
        ops.append(Op(i, codes[o.opcodeIndex], int(oc.version or 1), [int(x) for x in (o.inputs if o.inputs is not None else [])],
                      [int(x) for x in (o.outputs if o.outputs is not None else [])], o.builtinOptions))
    return Model(path, raw, tensors, ops, [int(x) for x in sg.inputs], [int(x) for x in sg.outputs],
                 subgraphs=len(m.subgraphs), description=_str(m.description), op_codes=codes)


def _str(b: Any) -> str:
    if b is None:
        return ""
    return b.decode("utf-8", "replace") if isinstance(b, (bytes, bytearray)) else str(b)


def _tensor(i: int, t: Any, buffers: list[Any]) -> Tensor:
    dtype = _TYPE_NAMES.get(int(t.type), f"type{t.type}")
    shape = tuple(int(x) for x in (t.shape if t.shape is not None else []))
    sig = [int(x) for x in t.shapeSignature] if t.shapeSignature is not None else []
    data = None
    buf = buffers[t.buffer] if t.buffer is not None and t.buffer < len(buffers) else None
    if buf is not None and buf.data is not None and len(buf.data) > 0 and int(t.type) in _DTYPES:
        data = np.frombuffer(bytes(np.asarray(buf.data, np.uint8)), dtype=_DTYPES[int(t.type)]).reshape(shape)
    scale = zp = None
    axis = 0
    q = t.quantization
    if q is not None and q.scale is not None and len(q.scale) > 0:
        scale = np.asarray(q.scale, np.float32)
        zp = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0] * len(scale), np.int64)
        axis = int(q.quantizedDimension or 0)
    return Tensor(i, _str(t.name), shape, dtype, scale, zp, axis, data,
                  dynamic=_is_dynamic(shape, sig))


def _is_dynamic(shape: tuple[int, ...], sig: list[int]) -> bool:
    """A -1 batch in ``shape_signature`` with a concrete ``shape`` of batch 1 is static (what Keras
    converters write and TFLite Micro runs); any other -1 (or a -1 in ``shape``) is dynamic."""
    if any(d < 0 for d in shape):
        return True
    return any(d < 0 and not (i == 0 and shape[:1] == (1,)) for i, d in enumerate(sig))
