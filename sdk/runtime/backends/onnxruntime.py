"""ONNX Runtime backend: CPU execution provider with thread settings; TensorRT/CUDA when present."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdk.runtime.backends.base import BaseBackend, Inputs, TensorSpec

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16",
              "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool"}
_OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
               "all": "ORT_ENABLE_ALL"}


def available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def missing_reason() -> str:
    return "onnxruntime is not installed (pip install onnxruntime)"


def make_session_options(options: Any = None, threads: int = 1, inter_op_threads: int = 1) -> Any:
    """An ``onnxruntime.SessionOptions``: ``options`` may already be one, or a dict of its attributes
    (``graph_optimization_level`` may be ``"all"``/``"basic"``/…, ``execution_mode`` ``"parallel"``)."""
    import onnxruntime as ort

    if isinstance(options, ort.SessionOptions):
        return options
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = inter_op_threads
    for key, value in dict(options or {}).items():
        if key == "graph_optimization_level" and isinstance(value, str):
            value = getattr(ort.GraphOptimizationLevel, _OPT_LEVELS.get(value, value))
        elif key == "execution_mode" and isinstance(value, str):
            value = getattr(ort.ExecutionMode, f"ORT_{value.upper()}")
        if key == "config_entries":
            for k, v in dict(value).items():
                so.add_session_config_entry(k, str(v))
            continue
        if not hasattr(so, key):
            raise ValueError(f"unknown onnxruntime session option {key!r}")
        setattr(so, key, value)
    return so


def default_providers(use_gpu: bool = True) -> list[str]:
    """TensorRT, then CUDA (when installed and ``use_gpu``), then CPU."""
    import onnxruntime as ort

    have = ort.get_available_providers()
    gpu = [p for p in GPU_PROVIDERS if use_gpu and p in have]
    return [*gpu, "CPUExecutionProvider"]


class OnnxRuntimeBackend(BaseBackend):
    """``OnnxRuntimeBackend(path, threads=1, inter_op_threads=1, providers=None, session_options=None)``."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, *, threads: int = 1, inter_op_threads: int = 1,
                 providers: Sequence[str | tuple[str, dict[str, Any]]] | None = None,
                 session_options: Mapping[str, Any] | Any = None, use_gpu: bool = True) -> None:
        super().__init__(path)
        import onnxruntime as ort

        try:
            so = make_session_options(session_options, threads, inter_op_threads)
        except (ValueError, AttributeError, TypeError) as e:
            raise self.fail("configure a session for", e) from None
        chosen = list(providers) if providers is not None else default_providers(use_gpu)
        try:
            self._session = ort.InferenceSession(str(self.path), so, providers=chosen)
        except Exception as e:  # noqa: BLE001 - ORT raises several unrelated types for bad files
            raise self.fail("load", e) from None
        self.providers = self._session.get_providers()
        self._inputs = [self._spec(i) for i in self._session.get_inputs()]
        self._outputs = [self._spec(o) for o in self._session.get_outputs()]
        self._output_names = [o.name for o in self._outputs]

    @staticmethod
    def _spec(arg: Any) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else (d or None) for d in (arg.shape or []))
        return TensorSpec(arg.name, shape, _ORT_TYPES.get(arg.type, arg.type))

    def run(self, inputs: Inputs) -> list[np.ndarray]:
        self._check_open()
        feed = self.named_inputs(inputs)
        for spec in self._inputs:
            want = np.dtype(spec.dtype)
            if feed[spec.name].dtype != want:
                feed[spec.name] = feed[spec.name].astype(want)
        try:
            return list(self._session.run(self._output_names, feed))
        except Exception as e:  # noqa: BLE001
            raise self.fail("run", e) from None

    def close(self) -> None:
        super().close()
        self._session = None
