"""LiteRT (TensorFlow Lite) backend: ``ai_edge_litert`` interpreter, ``tflite_runtime`` fallback.

XNNPACK (the default delegate) is on unless ``xnnpack=False``. Quantized int8/uint8 inputs and
outputs are converted from/to float with each tensor's scale and zero point, so callers pass
and get float arrays; ``raw=True`` passes the integer tensors through unchanged.

The backend runs the layout of the file: a ``.tflite`` written by
``sdk.optimize.tflite_export.onnx_to_tflite`` takes NHWC input (transpose NCHW arrays with
``x.transpose(0, 2, 3, 1)``, or let the model manager do it from the manifest's input layout).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import BackendError
from sdk.runtime.backends.base import BaseBackend, Inputs, TensorSpec
from sdk.runtime.backends.tflite_check import tflite_problem


def _interpreter_module() -> Any:
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        from tflite_runtime import interpreter  # type: ignore[no-redef]
    return interpreter


def available() -> bool:
    return any(importlib.util.find_spec(m) is not None for m in ("ai_edge_litert", "tflite_runtime"))


def missing_reason() -> str:
    return "no LiteRT interpreter (pip install ai-edge-litert)"


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(x, np.float32) / scale) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.float32) - zero_point) * np.float32(scale)


class LiteRTBackend(BaseBackend):
    """``LiteRTBackend(path, threads=1, xnnpack=True, raw=False, reference=False)``; ``reference=True`` runs
    TFLite's reference kernels (slow; the integer arithmetic that ``ember export-c`` reproduces bit for bit)."""

    name = "litert"

    def __init__(self, path: str | Path, *, threads: int = 1, xnnpack: bool = True, raw: bool = False,
                 reference: bool = False) -> None:
        super().__init__(path)
        mod = _interpreter_module()
        resolver = mod.OpResolverType.AUTO if xnnpack else mod.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        if reference:
            resolver = mod.OpResolverType.BUILTIN_REF
        self.raw = raw
        try:
            problem = tflite_problem(self.path.read_bytes())
        except OSError as e:
            raise self.fail("read", e) from None
        if problem:  # checked first: LiteRT crashes the process on some of these
            raise BackendError(f"{self.path}: not a usable .tflite model: {problem}")
        try:
            self._interp = mod.Interpreter(model_path=str(self.path), num_threads=threads,
                                           experimental_op_resolver_type=resolver)
            self._interp.allocate_tensors()
            # details decode names and quantization from the file: corrupt ones fail here, not later
            self._in_details = self._interp.get_input_details()
            self._out_details = self._interp.get_output_details()
            self._inputs = [self._spec(d) for d in self._in_details]
            self._outputs = [self._spec(d) for d in self._out_details]
        except Exception as e:  # noqa: BLE001 - the interpreter raises ValueError/RuntimeError/UnicodeDecodeError
            self._interp = None
            raise self.fail("load", e) from None

    @staticmethod
    def _spec(d: dict[str, Any]) -> TensorSpec:
        scale, zp = d.get("quantization", (0.0, 0))
        dtype = np.dtype(d["dtype"])
        quant = (float(scale), int(zp)) if scale and dtype.kind in "iu" else None
        return TensorSpec(d["name"], tuple(int(s) for s in d["shape"]), dtype.name, quant)

    def run(self, inputs: Inputs) -> list[np.ndarray]:
        self._check_open()
        feed = self.named_inputs(inputs)
        try:
            for spec, detail in zip(self._inputs, self._in_details, strict=True):
                x = feed[spec.name]
                if tuple(x.shape) != tuple(detail["shape"]):
                    self._resize(detail, x.shape)
                if spec.quant is not None and not (self.raw and x.dtype == np.dtype(spec.dtype)):
                    x = quantize(x, *spec.quant, np.dtype(spec.dtype))
                self._interp.set_tensor(detail["index"], np.ascontiguousarray(x, dtype=np.dtype(spec.dtype)))
            self._interp.invoke()
            outs = []
            for spec, detail in zip(self._outputs, self._out_details, strict=True):
                y = self._interp.get_tensor(detail["index"])
                outs.append(y if self.raw or spec.quant is None else dequantize(y, *spec.quant))
            return outs
        except (ValueError, RuntimeError) as e:
            raise self.fail("run", e) from None

    def _resize(self, detail: dict[str, Any], shape: tuple[int, ...]) -> None:
        self._interp.resize_tensor_input(detail["index"], list(shape))
        self._interp.allocate_tensors()
        self._in_details = self._interp.get_input_details()
        self._out_details = self._interp.get_output_details()
        detail["shape"] = np.array(shape)

    def close(self) -> None:
        super().close()
        self._interp = None
