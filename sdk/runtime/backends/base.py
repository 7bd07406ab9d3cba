"""The one ``Backend`` protocol every runtime implements, and shared plumbing.

A backend loads one model file, describes its inputs/outputs as ``TensorSpec``, runs a batch
and closes. Errors are ``BackendError`` naming the file, never a raw library traceback.
A backend runs the tensor layout of its file (a ``.tflite`` from
``sdk.optimize.tflite_export.onnx_to_tflite`` takes NHWC; ONNX models take NCHW).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from sdk.errors import BackendError

Inputs = np.ndarray | Mapping[str, np.ndarray] | Sequence[np.ndarray]


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output. ``shape`` entries are ints, or str/None for dynamic dimensions.
    ``quant`` is ``(scale, zero_point)`` for a quantized tensor of an integer ``dtype``."""

    name: str
    shape: tuple[int | str | None, ...]
    dtype: str
    quant: tuple[float, int] | None = None

    def concrete_shape(self, dynamic: int = 1) -> tuple[int, ...]:
        """The shape with dynamic dimensions replaced by ``dynamic``."""
        return tuple(d if isinstance(d, int) and d > 0 else dynamic for d in self.shape)


@runtime_checkable
class Backend(Protocol):
    """A loaded model on one runtime."""

    name: str
    path: Path

    @property
    def inputs(self) -> list[TensorSpec]: ...

    @property
    def outputs(self) -> list[TensorSpec]: ...

    def run(self, inputs: Inputs) -> list[np.ndarray]:
        """Run one batch; ``inputs`` is an array (single-input models), a list in input order,
        or a dict by input name. Returns the outputs in ``outputs`` order."""
        ...

    def warmup(self, runs: int = 2) -> float:
        """Run zeros ``runs`` times (compiles kernels, fills caches); returns the last run's ms."""
        ...

    def close(self) -> None: ...


class BaseBackend:
    """Shared parts: file checks, input normalisation, warm-up, context manager."""

    name = "base"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._closed = False
        if not self.path.is_file():
            raise BackendError(f"{self.path}: model file not found ({self.name} backend)")
        if self.path.stat().st_size == 0:
            raise BackendError(f"{self.path}: model file is empty ({self.name} backend)")

    # subclasses set these
    _inputs: list[TensorSpec]
    _outputs: list[TensorSpec]

    @property
    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def fail(self, action: str, err: BaseException) -> BackendError:
        """A ``BackendError`` naming the file, with the library's message trimmed to its first lines."""
        text = " ".join(str(err).strip().splitlines()[:3])[:400] or type(err).__name__
        return BackendError(f"{self.path}: {self.name} cannot {action} it: {text}")

    def named_inputs(self, inputs: Inputs) -> dict[str, np.ndarray]:
        """Normalise ``inputs`` to ``{name: array}`` and check the count."""
        names = [s.name for s in self._inputs]
        if isinstance(inputs, Mapping):
            missing = [n for n in names if n not in inputs]
            if missing:
                raise BackendError(f"{self.path}: missing input(s) {missing} (model inputs: {names})")
            return {n: np.asarray(inputs[n]) for n in names}
        arrays = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
        if len(arrays) != len(names):
            raise BackendError(f"{self.path}: got {len(arrays)} input(s), model takes {len(names)} {names}")
        return {n: np.asarray(a) for n, a in zip(names, arrays, strict=True)}

    def zeros(self) -> list[np.ndarray]:
        """Zero inputs of the model's input shapes (float32 unless the input is an integer type)."""
        return [np.zeros(s.concrete_shape(), dtype=np.dtype(s.dtype) if s.quant is None else np.float32)
                for s in self._inputs]

    def warmup(self, runs: int = 2) -> float:
        ms = 0.0
        for _ in range(max(1, runs)):
            t0 = time.perf_counter()
            self.run(self.zeros())
            ms = (time.perf_counter() - t0) * 1e3
        return ms

    def run(self, inputs: Inputs) -> list[np.ndarray]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_open(self) -> None:
        if self._closed:
            raise BackendError(f"{self.path}: {self.name} session is closed")

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> BaseBackend:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path.name} inputs={self._inputs} outputs={self._outputs}>"
