"""tinygrad backend: ``tinygrad.nn.onnx.OnnxRunner`` on the device tinygrad picks (``DEV`` respected).

tinygrad's CPU device compiles with clang. The first runs compile kernels (seconds): call
``warmup()`` before timing or serving. Unused opset imports that ONNX Runtime's quantizer adds
(``ai.onnx.preview``, ``com.microsoft`` when no node uses them) are stripped before loading,
because tinygrad rejects domains it does not know.

tinygrad keeps global state (kernel caches, the scheduler), so every load and run holds one
process-wide lock: a variant warming up in the background pauses a tinygrad variant that is
serving; ONNX Runtime and LiteRT variants are not affected.
"""

from __future__ import annotations

import importlib.util
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np

from sdk.runtime.backends.base import BaseBackend, Inputs, TensorSpec

DEFAULT_DOMAINS = ("", "ai.onnx")
_LOCK = threading.RLock()


def available() -> bool:
    return importlib.util.find_spec("tinygrad") is not None and (_has_gpu_env() or shutil.which("clang") is not None)


def _has_gpu_env() -> bool:
    import os

    dev = os.environ.get("DEV", "").upper()
    return bool(dev) and dev not in ("CPU", "CLANG")


def missing_reason() -> str:
    if importlib.util.find_spec("tinygrad") is None:
        return "tinygrad is not installed (pip install tinygrad)"
    return "tinygrad's CPU device needs clang (apt-get install clang), or set DEV to a GPU device"


def strip_unused_opsets(model: Any) -> list[str]:
    """Remove opset imports no node uses (besides the default domain); returns the removed domains."""
    used = {n.domain for n in model.graph.node} | {f.domain for f in model.functions}
    keep = [o for o in model.opset_import if o.domain in DEFAULT_DOMAINS or o.domain in used]
    removed = [o.domain for o in model.opset_import if o not in keep]
    if removed:
        del model.opset_import[:]
        model.opset_import.extend(keep)
    return removed


class TinygradBackend(BaseBackend):
    """``TinygradBackend(path, device=None, jit=True)``; ``device`` e.g. ``"CPU"``, ``"CUDA"``."""

    name = "tinygrad"

    def __init__(self, path: str | Path, *, device: str | None = None, jit: bool = True) -> None:
        super().__init__(path)
        import onnx

        try:
            model = onnx.load(str(self.path))
        except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and others
            raise self.fail("parse", e) from None
        self.stripped_domains = strip_unused_opsets(model)
        from tinygrad import Device, Tensor, TinyJit
        from tinygrad.nn.onnx import OnnxRunner

        self.device = device or Device.DEFAULT
        self._Tensor = Tensor
        try:
            with _LOCK:
                data = np.frombuffer(model.SerializeToString(), dtype=np.uint8)
                self._runner = OnnxRunner(Tensor(data, device="CPU"))
                if device:
                    self._runner.to(device)
        except Exception as e:  # noqa: BLE001
            raise self.fail("load", e) from None
        self._inputs = [self._spec(n, v) for n, v in self._runner.graph_inputs.items()]
        out_info = {o.name: o for o in model.graph.output}
        self._outputs = [self._onnx_spec(out_info[n]) for n in self._runner.graph_outputs]
        self._jit = TinyJit(self._forward) if jit else None

    @staticmethod
    def _spec(name: str, value: Any) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) else (d or None) for d in value.shape)
        return TensorSpec(name, shape, np.dtype(value.dtype.fmt).name if value.dtype.fmt else "float32")

    @staticmethod
    def _onnx_spec(vi: Any) -> TensorSpec:
        from onnx import helper

        t = vi.type.tensor_type
        shape = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim)
        return TensorSpec(vi.name, shape, np.dtype(helper.tensor_dtype_to_np_dtype(t.elem_type)).name)

    def _forward(self, **feed: Any) -> list[Any]:
        out = self._runner(feed)
        return [out[n].realize() for n in self._runner.graph_outputs]

    def run(self, inputs: Inputs) -> list[np.ndarray]:
        self._check_open()
        named = self.named_inputs(inputs)
        try:
            with _LOCK:
                feed = {}
                for spec in self._inputs:
                    x = np.ascontiguousarray(named[spec.name], dtype=np.dtype(spec.dtype))
                    feed[spec.name] = self._Tensor(x, device=self.device).realize()
                outs = self._jit(**feed) if self._jit is not None else self._forward(**feed)
                return [o.numpy().copy() for o in outs]
        except Exception as e:  # noqa: BLE001 - tinygrad raises RuntimeError/AssertionError/NotImplementedError
            raise self.fail("run", e) from None

    def warmup(self, runs: int = 3) -> float:
        """Compile kernels and capture the JIT (needs 3 runs when ``jit=True``)."""
        return super().warmup(max(runs, 3 if self._jit is not None else 1))

    def close(self) -> None:
        super().close()
        self._runner = None
        self._jit = None
