"""A small JSON-Schema subset validator (no dependency) and the manifest schema.

Supported keywords: ``type`` (str or list), ``required``, ``properties``,
``additionalProperties`` (bool or schema), ``items``, ``enum``, ``pattern``, ``minimum``,
``minItems``. Enough to give precise messages (``variants[1].sha256: ...``) for manifest files.
"""

from __future__ import annotations

import re
from typing import Any

from sdk.vocab import BACKENDS, TIER_PATTERN

LAYOUTS = ("NCHW", "NHWC", "NCW", "NWC", "NC", "ANY")
VERSION_PATTERN = r"^(0|[1-9][0-9]{0,8})(\.(0|[1-9][0-9]{0,8})){0,3}\Z"  # 1 to 4 dotted integers: 1, 1.2, 1.2.3

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list, tuple), "string": (str,), "integer": (int,),
    "number": (int, float), "boolean": (bool,), "null": (type(None),),
}


def _is_type(value: Any, name: str) -> bool:
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[name])


def validate(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Problems of ``value`` against ``schema`` as ``"path: message"`` strings (empty if valid)."""
    where = path or "(root)"
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(value, t) for t in names):
            return [f"{where}: expected {' or '.join(names)}, got {type(value).__name__} {value!r:.60}"]
    problems: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {list(schema['enum'])}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if "minimum" in schema and _is_type(value, "number") and value < schema["minimum"]:
        problems.append(f"{where}: {value} is below the minimum {schema['minimum']}")
    if isinstance(value, dict):
        problems += _validate_object(value, schema, path)
    if isinstance(value, (list, tuple)):
        if len(value) < schema.get("minItems", 0):
            problems.append(f"{where}: needs at least {schema['minItems']} item(s)")
        if "items" in schema:
            for i, item in enumerate(value):
                problems += validate(item, schema["items"], f"{path}[{i}]")
    return problems


def _validate_object(value: dict[str, Any], schema: dict[str, Any], path: str) -> list[str]:
    problems = []
    prefix = f"{path}." if path else ""
    for key in schema.get("required", []):
        if key not in value:
            problems.append(f"{path or '(root)'}: missing required key {key!r}")
    props = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in props:
            problems += validate(item, props[key], prefix + key)
        elif extra is False:
            problems.append(f"{path or '(root)'}: unknown key {key!r}")
        elif isinstance(extra, dict):
            problems += validate(item, extra, prefix + key)
    return problems


_NUM = {"type": "number"}
METRICS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "latency_ms_p50": {"type": "number", "minimum": 0}, "latency_ms_p95": {"type": "number", "minimum": 0},
        "peak_mem_bytes": {"type": "integer", "minimum": 0}, "accuracy": _NUM, "energy_mj": _NUM,
        "threads": {"type": "integer", "minimum": 1}, "measured_at": {"type": "string"},
    },
}

VARIANT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["tier", "file", "backend"],
    "properties": {
        "tier": {"type": "string", "pattern": TIER_PATTERN},
        "file": {"type": "string", "pattern": r"\S"},  # where it may point: manifest.file_problem
        "backend": {"type": "string", "enum": list(BACKENDS)},
        "sha256": {"type": "string", "pattern": r"^[0-9a-f]{64}$"},
        "size_bytes": {"type": "integer", "minimum": 0},
        "metrics": {"type": "object", "additionalProperties": METRICS_SCHEMA},
    },
}

_FILE_REF = {"type": "object", "required": ["file"], "properties": {
    "file": {"type": "string", "pattern": r"\S"}, "sha256": {"type": "string", "pattern": r"^[0-9a-f]{64}$"},
    "macs": {"type": "number", "minimum": 0}}}
EXITS_SCHEMA: dict[str, Any] = {  # a cascade or early-exit chain (sdk.compress.cascade)
    "type": "object",
    "required": ["kind", "threshold", "stages"],
    "properties": {
        "kind": {"type": "string", "enum": ["cascade", "early_exit"]},
        "threshold": {"type": "number", "minimum": 0}, "low_battery_threshold": {"type": "number", "minimum": 0},
        "confidence": {"type": "string", "enum": ["softmax", "max"]},
        "stages": {"type": "array", "minItems": 2, "items": {"type": "object", "properties": {
            "body": {**_FILE_REF, "type": ["object", "null"]},
            "head": {**_FILE_REF, "type": ["object", "string", "null"], "pattern": "^variants$"}}}},
        "expected_exit_rate": {"type": "array", "items": _NUM}, "avg_macs": _NUM, "budget_points": _NUM,
    },
}

MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["schema_version", "name", "input", "output", "variants"],
    "properties": {
        "schema_version": {"type": "integer", "enum": [1]},
        "name": {"type": "string", "pattern": r"^\S+$"},
        "version": {"type": "string", "pattern": VERSION_PATTERN},
        "task": {"type": "string"},
        "labels": {"type": "array", "items": {"type": "string"}},
        "input": {
            "type": "object",
            "required": ["shape"],
            "properties": {
                "name": {"type": "string"},
                "shape": {"type": "array", "minItems": 1, "items": {"type": ["integer", "string", "null"]}},
                "layout": {"type": "string", "enum": list(LAYOUTS)},
                "dtype": {"type": "string", "enum": ["float32", "float16", "int8", "uint8", "int16"]},
                "normalization": {
                    "type": "object",
                    "properties": {"mean": {"type": "array", "items": _NUM},
                                   "std": {"type": "array", "items": _NUM}},
                },
                "sample_rate": {"type": "number", "minimum": 0},
            },
        },
        "output": {
            "type": "object",
            "properties": {"decoder": {"type": "string"}, "names": {"type": "array", "items": {"type": "string"}}},
        },
        "variants": {"type": "array", "items": {"type": "object"}},
        "reference_profile": {"type": "object"},
        "exits": EXITS_SCHEMA,
    },
}
