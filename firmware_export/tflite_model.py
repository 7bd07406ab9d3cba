"""Read a ``.tflite`` flatbuffer into a small graph (tensors, ops, constants) for the C exporter.

Uses the flatbuffers object API of ``ai_edge_litert.schema_py_generated`` (no TensorFlow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ExportError
from sdk.runtime.backends.tflite_check import tflite_problem

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
    problem = tflite_problem(raw)
    if problem:
        raise ExportError(f"{where}: not a usable TFLite model: {problem}")
    try:
        m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(raw, 0))
    except Exception as e:  # flatbuffers raises plain errors on corrupt input
        raise ExportError(f"{where}: corrupt TFLite flatbuffer ({e})") from e
    try:
        return _model(m, path, raw)
    except _Invalid as e:
        raise ExportError(f"{where}: inconsistent TFLite model: {e}; re-convert it "
                          "(sdk.optimize.tflite_export.onnx_to_tflite(..., int8=True))") from None


class _Invalid(Exception):
    """A structural problem of the flatbuffer (the message says which tensor/op and what)."""


def _model(m: Any, path: Path | None, raw: bytes) -> Model:
    names = _builtin_names()
    codes = []
    for oc in m.operatorCodes or []:
        code = max(int(oc.builtinCode or 0), int(oc.deprecatedBuiltinCode or 0))
        codes.append(names.get(code, f"BUILTIN_{code}") if code != 32 else f"CUSTOM:{_str(oc.customCode)}")
    if not m.subgraphs:
        raise _Invalid("no subgraph")
    sg = m.subgraphs[0]
    tensors = [_tensor(i, t, m.buffers or []) for i, t in enumerate(sg.tensors or [])]
    ops = []
    for i, o in enumerate(sg.operators or []):
        k = int(o.opcodeIndex or 0)
        if not 0 <= k < len(codes):
            raise _Invalid(f"op {i} uses operator code {k} of {len(codes)}")
        ins, outs = _indices(o.inputs, len(tensors), f"op {i} input", -1), _indices(o.outputs, len(tensors),
                                                                                     f"op {i} output")
        ops.append(Op(i, codes[k], int(m.operatorCodes[k].version or 1), ins, outs, o.builtinOptions))
    inputs, outputs = _indices(sg.inputs, len(tensors), "input"), _indices(sg.outputs, len(tensors), "output")
    return Model(path, raw, tensors, ops, inputs, outputs, subgraphs=len(m.subgraphs),
                 description=_str(m.description), op_codes=codes)


def _indices(values: Any, n: int, what: str, lowest: int = 0) -> list[int]:
    out = [int(x) for x in (values if values is not None else [])]
    bad = [x for x in out if not lowest <= x < n]
    if bad:
        raise _Invalid(f"{what} refers to tensor {bad[0]} (the model has {n})")
    return out


def _str(b: Any) -> str:
    if b is None:
        return ""
    return b.decode("utf-8", "replace") if isinstance(b, (bytes, bytearray)) else str(b)


# Zero-point range per quantized type (TFLite: int8/uint8 as stored; int16 and int32 activations use 0).
_ZP_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (0, 0), "int32": (-2**31, 2**31 - 1),
             "int64": (-2**31, 2**31 - 1)}
MAX_ELEMENTS = 1 << 28  # no microcontroller model has a tensor this large


def _tensor(i: int, t: Any, buffers: list[Any]) -> Tensor:
    name = _str(t.name)
    where = f"tensor {i} ({name!r})"
    dtype = _TYPE_NAMES.get(int(t.type or 0), f"type{t.type}")
    shape = tuple(int(x) for x in (t.shape if t.shape is not None else []))
    sig = [int(x) for x in t.shapeSignature] if t.shapeSignature is not None else []
    if len(shape) > 8 or any(d < -1 for d in shape) or _elements(shape) > MAX_ELEMENTS:
        raise _Invalid(f"{where} has an impossible shape {list(shape)[:10]}")
    data = None
    b = int(t.buffer or 0)
    if not 0 <= b < max(1, len(buffers)):
        raise _Invalid(f"{where} uses buffer {b} (the model has {len(buffers)})")
    buf = buffers[b] if b < len(buffers) else None
    if buf is not None and buf.data is not None and len(buf.data) > 0 and int(t.type or 0) in _DTYPES:
        want = _elements(shape) * np.dtype(_DTYPES[int(t.type or 0)]).itemsize
        if len(buf.data) != want or any(d < 0 for d in shape):
            raise _Invalid(f"{where}: buffer holds {len(buf.data)} bytes, shape {list(shape)} of {dtype} needs {want}")
        data = np.frombuffer(bytes(np.asarray(buf.data, np.uint8)), dtype=_DTYPES[int(t.type or 0)]).reshape(shape)
    scale, zp, axis = _quantization(t.quantization, shape, dtype, where)
    return Tensor(i, name, shape, dtype, scale, zp, axis, data,
                  dynamic=_is_dynamic(shape, sig))


def _elements(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= max(d, 1)
    return n


def _quantization(q: Any, shape: tuple[int, ...], dtype: str, where: str) -> tuple[Any, Any, int]:
    """(scale, zero_point, axis), validated: scales finite and > 0, zero points in the type's range,
    one zero point per scale, per-channel axis inside the shape with one scale per channel."""
    if q is None or q.scale is None or len(q.scale) == 0:
        return None, None, 0
    scale = np.asarray(q.scale, np.float64)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0) or np.any(scale > 3.4e38):
        raise _Invalid(f"{where} has quantization scale(s) {scale[:4].tolist()} (each must be finite and > 0)")
    zp = np.asarray(q.zeroPoint if q.zeroPoint is not None and len(q.zeroPoint) else [0] * len(scale), np.int64)
    if len(zp) != len(scale):
        raise _Invalid(f"{where} has {len(zp)} zero points for {len(scale)} scales")
    lo, hi = _ZP_RANGE.get(dtype, (-2**31, 2**31 - 1))
    if np.any(zp < lo) or np.any(zp > hi):
        raise _Invalid(f"{where} ({dtype}) has zero point(s) {zp[:4].tolist()} outside [{lo}, {hi}]")
    axis = int(q.quantizedDimension or 0)
    if len(scale) > 1 and not (0 <= axis < len(shape) and shape[axis] == len(scale)):
        raise _Invalid(f"{where} has {len(scale)} per-channel scales on axis {axis} of shape {list(shape)}")
    return scale.astype(np.float32), zp, axis


def _is_dynamic(shape: tuple[int, ...], sig: list[int]) -> bool:
    """A -1 batch in ``shape_signature`` with a concrete ``shape`` of batch 1 is static (what Keras
    converters write and TFLite Micro runs); any other -1 (or a -1 in ``shape``) is dynamic."""
    if any(d < 0 for d in shape):
        return True
    return any(d < 0 and not (i == 0 and shape[:1] == (1,)) for i, d in enumerate(sig))
