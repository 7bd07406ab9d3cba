"""The fuzzer's mutations (``bench/fuzz.py``): byte-level edits and structure-aware ones that set a
numeric or string field of a .tflite flatbuffer, an .onnx protobuf or a manifest's JSON to a hostile
value (a zero point of 2**57, a tensor index of -7, a path out of the model folder, deep nesting)."""

from __future__ import annotations

import json
import random
from typing import Any

HOSTILE_INTS = [0, -1, 1, -7, 7, 127, 128, -128, -129, 255, 256, 65535, 2**31 - 1, -2**31, 2**31, 2**32,
                2**57 + 49, -2**40, 10**6]
HOSTILE_FLOATS = [0.0, -0.0, -1.0, 1e-45, 1e-30, 1e30, 3.4e38, float("nan"), float("inf"), -float("inf")]
HOSTILE_STRINGS = ["", "../../../../etc/passwd", "/etc/passwd", "a" * 5000, "\udcff\x00", "é" * 3, "..", "nul\x00"]


# ---- mutations -----------------------------------------------------------------------------------
def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One to four random byte-level edits."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not b:
            break
        op = rng.randrange(6)
        i = rng.randrange(len(b))
        if op == 0:
            for _ in range(rng.randint(1, 8)):
                j = rng.randrange(len(b))
                b[j] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[i] = rng.choice([0, 0xFF, 0x7F, 0x80, 0x01, 0xFE])
        elif op == 2:
            del b[rng.randrange(len(b)):]
        elif op == 3:
            del b[i:i + rng.randint(1, 64)]
        elif op == 4:
            b[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        else:
            n = rng.randint(1, 256)
            b[i:i + n] = b"\x00" * min(n, len(b) - i)
    return bytes(b)


def _hostile_like(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return rng.choice(HOSTILE_INTS)
    if isinstance(value, float):
        return rng.choice(HOSTILE_FLOATS)
    if isinstance(value, (str, bytes)):
        s = rng.choice(HOSTILE_STRINGS)
        return s.encode("utf-8", "surrogateescape") if isinstance(value, bytes) else s
    return value


def _fields(obj: Any, out: list[tuple[Any, Any]], depth: int = 0) -> None:
    """(container, key) pairs of every scalar field, array or long list in an object tree."""
    import numpy as np

    if depth > 12:
        return
    items = (enumerate(obj) if isinstance(obj, list) else obj.items() if isinstance(obj, dict)
             else vars(obj).items() if hasattr(obj, "__dict__") else ())
    for k, v in items:
        if v is None:
            continue
        if isinstance(v, (bool, int, float, str, bytes, np.generic, np.ndarray)) or (
                isinstance(v, list) and len(v) > 64):
            out.append((obj, k))
        else:
            _fields(v, out, depth + 1)


def _set(container: Any, key: Any, value: Any) -> None:
    if isinstance(container, (list, dict)):
        container[key] = value
    else:
        setattr(container, key, value)


def _get(container: Any, key: Any) -> Any:
    return container[key] if isinstance(container, (list, dict)) else getattr(container, key)


def _hostile_field(root: Any, rng: random.Random) -> None:
    import numpy as np

    fields: list[tuple[Any, Any]] = []
    _fields(root, fields)
    if not fields:
        return
    container, key = rng.choice(fields)
    v = _get(container, key)
    if isinstance(v, (np.ndarray, list)):
        arr = list(np.asarray(v).ravel().tolist()) if isinstance(v, np.ndarray) else list(v)
        if arr and rng.random() < 0.5:
            arr = arr[:rng.randrange(len(arr))]
        elif arr:
            arr[rng.randrange(len(arr))] = _hostile_like(arr[0], rng)
        _set(container, key, np.asarray(arr, v.dtype if isinstance(v, np.ndarray) else None)
             if isinstance(v, np.ndarray) and all(isinstance(x, (int, float)) for x in arr)
             and _fits(arr, v.dtype) else arr)
    else:
        _set(container, key, _hostile_like(v.item() if isinstance(v, np.generic) else v, rng))


def _fits(values: list[Any], dtype: Any) -> bool:
    import numpy as np

    try:
        return bool(np.all(np.asarray(values, dtype) == np.asarray(values, object)))
    except (OverflowError, ValueError, TypeError):
        return False


def mutate_tflite(data: bytes, rng: random.Random) -> bytes:
    """Set 1–3 fields of the flatbuffer (any tensor, op, buffer, quantization) to hostile values."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    for _ in range(10):
        m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(data, 0))
        for _ in range(rng.randint(1, 3)):
            _hostile_field(m, rng)
        try:
            b = flatbuffers.Builder(0)
            b.Finish(m.Pack(b), file_identifier=b"TFL3")
            return bytes(b.Output())
        except Exception:  # noqa: BLE001, S112 - a value the builder cannot encode: try another
            continue
    return mutate_bytes(data, rng)


def mutate_onnx(data: bytes, rng: random.Random) -> bytes:
    """Set 1–3 fields of the protobuf (dims, types, attributes, names, indices) to hostile values."""
    import onnx

    for _ in range(10):
        m = onnx.ModelProto()
        m.ParseFromString(data)
        fields: list[tuple[Any, Any]] = []
        _proto_fields(m, fields, 0)
        for _ in range(rng.randint(1, 3)):
            msg, fd = rng.choice(fields)
            try:
                _mutate_proto_field(msg, fd, rng)
            except (TypeError, ValueError, OverflowError):
                continue
        try:
            return m.SerializeToString()
        except Exception:  # noqa: BLE001, S112 - as above
            continue
    return mutate_bytes(data, rng)


def _proto_fields(msg: Any, out: list[tuple[Any, Any]], depth: int) -> None:
    if depth > 8:
        return
    for fd, value in msg.ListFields():
        if fd.type == fd.TYPE_MESSAGE:
            for sub in (value if fd.is_repeated else [value]):
                _proto_fields(sub, out, depth + 1)
        else:
            out.append((msg, fd))


def _mutate_proto_field(msg: Any, fd: Any, rng: random.Random) -> None:
    value = getattr(msg, fd.name)
    if fd.is_repeated:
        if len(value) and rng.random() < 0.3:
            del value[rng.randrange(len(value)):]
        elif len(value):
            value[rng.randrange(len(value))] = _hostile_like(value[0], rng)
        return
    if fd.type == fd.TYPE_BYTES and len(value) > 8 and rng.random() < 0.5:
        setattr(msg, fd.name, value[:rng.randrange(len(value))])
        return
    setattr(msg, fd.name, _hostile_like(value, rng))


def mutate_manifest(text: str, rng: random.Random) -> str:
    """A JSON-aware edit (a field set to a hostile value, a key removed, deep nesting) or a byte edit."""
    r = rng.random()
    if r < 0.15:
        return mutate_bytes(text.encode(), rng).decode("utf-8", "replace")
    if r < 0.2:
        depth = rng.choice([500, 990, 5000, 100_000])
        return "[" * depth + "]" * depth
    data = json.loads(text)
    for _ in range(rng.randint(1, 3)):
        fields: list[tuple[Any, Any]] = []
        _fields(data, fields)
        container, key = rng.choice(fields)
        choice = rng.random()
        if choice < 0.15 and isinstance(container, dict):
            del container[key]
        elif choice < 0.3:
            _set(container, key, rng.choice([None, [], {}, [1, 2], {"a": 1}, "x", -1, 1e308, True]))
        elif choice < 0.35:
            _set(container, key, json.loads('{"a":' * 900 + "1" + "}" * 900))
        else:
            _set(container, key, _hostile_like(_get(container, key), rng))
    return json.dumps(data, allow_nan=True)


def mutate(kind: str, data: bytes, rng: random.Random) -> bytes:
    if kind == "manifest":
        return mutate_manifest(data.decode(), rng).encode("utf-8", "surrogateescape")
    if rng.random() < 0.5:
        return mutate_bytes(data, rng)
    return (mutate_tflite if kind == "tflite" else mutate_onnx)(data, rng)


