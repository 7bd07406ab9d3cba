"""Runtime backends, discovered by name and imported lazily.

    from sdk.runtime.backends import load_backend, available_backends
    model = load_backend("model.onnx", "onnxruntime", threads=2)
    probs, = model.run(x)

Each runtime is one module here named after the backend (the names are ``sdk.vocab.BACKENDS``:
``onnxruntime``, ``litert``, ``tinygrad``) defining ``available() -> bool``, ``missing_reason()``
and a ``BaseBackend`` subclass whose ``name`` is the backend's name; that is how a name is
resolved. The runtime library itself is imported only when a model is loaded. An unknown name is
a ``BackendError`` listing the known ones.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from sdk.errors import BackendError
from sdk.runtime.backends.base import Backend, BaseBackend, TensorSpec
from sdk.vocab import BACKENDS, check_backend

KNOWN_BACKENDS = BACKENDS

__all__ = ["KNOWN_BACKENDS", "Backend", "BaseBackend", "TensorSpec", "available_backends", "get_backend",
           "load_backend"]


def _module(name: str) -> Any:
    return importlib.import_module(f"{__name__}.{check_backend(name)}")


def get_backend(name: str) -> type[BaseBackend]:
    """The backend class for ``name`` (``onnxruntime``, ``litert``, ``tinygrad``)."""
    module = _module(name)
    if not module.available():
        raise BackendError(f"backend {name!r} is not usable here: {module.missing_reason()}")
    for obj in vars(module).values():
        if isinstance(obj, type) and issubclass(obj, BaseBackend) and obj.name == name:
            return obj
    raise BackendError(f"backend module {module.__name__} defines no BaseBackend named {name!r}")


def available_backends() -> list[str]:
    """Names of the backends whose runtime is installed and usable on this machine."""
    return [n for n in KNOWN_BACKENDS if _module(n).available()]


def load_backend(path: str | Path, backend: str = "onnxruntime", **options: Any) -> BaseBackend:
    """Load ``path`` with ``backend``; ``options`` go to the backend class (e.g. ``threads``)."""
    return get_backend(backend)(path, **options)
