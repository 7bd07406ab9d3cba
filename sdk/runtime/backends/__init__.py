"""Runtime backends, discovered by name and imported lazily.

    from sdk.runtime.backends import load_backend, available_backends
    model = load_backend("model.onnx", "onnxruntime", threads=2)
    probs, = model.run(x)

Each runtime is one module here (``onnxruntime``, ``litert``, ``tinygrad``) defining a backend
class and ``available() -> bool``; the runtime library itself is imported only when a model
is loaded.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from sdk.errors import BackendError
from sdk.runtime.backends.base import Backend, BaseBackend, TensorSpec

KNOWN_BACKENDS = ("onnxruntime", "litert", "tinygrad")
_CLASSES = {"onnxruntime": "OnnxRuntimeBackend", "litert": "LiteRTBackend", "tinygrad": "TinygradBackend"}

__all__ = ["KNOWN_BACKENDS", "Backend", "BaseBackend", "TensorSpec", "available_backends", "get_backend",
           "load_backend"]


def _module(name: str) -> Any:
    if name not in _CLASSES:
        raise BackendError(f"unknown backend {name!r} (known: {', '.join(KNOWN_BACKENDS)})")
    return importlib.import_module(f"{__name__}.{name}")


def get_backend(name: str) -> type[BaseBackend]:
    """The backend class for ``name`` (``onnxruntime``, ``litert``, ``tinygrad``)."""
    module = _module(name)
    if not module.available():
        raise BackendError(f"backend {name!r} is not usable here: {module.missing_reason()}")
    return getattr(module, _CLASSES[name])


def available_backends() -> list[str]:
    """Names of the backends whose runtime is installed and usable on this machine."""
    return [n for n in KNOWN_BACKENDS if _module(n).available()]


def load_backend(path: str | Path, backend: str = "onnxruntime", **options: Any) -> BaseBackend:
    """Load ``path`` with ``backend``; ``options`` go to the backend class (e.g. ``threads``)."""
    return get_backend(backend)(path, **options)
