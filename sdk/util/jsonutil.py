"""The one numpy-aware JSON encoding of the project (JSON lines, telemetry payloads, CLI output, benches).

Non-finite floats become ``null`` so every document is strict JSON; numpy arrays and scalars become
lists and numbers; paths become strings; bytes become hex; dataclasses and enums their values;
objects with ``as_dict()`` are encoded through it; anything else by ``repr``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
from typing import Any

import numpy as np


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (see the module docstring)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return jsonable(value.astype(object))
        return value.tolist() if value.dtype != object else [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    if hasattr(value, "as_dict"):
        return jsonable(value.as_dict())
    return repr(value)


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of ``jsonable(value)``, strict (no NaN)."""
    return json.dumps(jsonable(value), allow_nan=False, **kwargs)
