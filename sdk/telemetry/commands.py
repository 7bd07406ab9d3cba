"""Remote commands on ``ember/<fleet>/<device>/cmd``: a small, validated set. Anything else is
rejected (``cmd.rejected`` event); payloads are data, never code.

``{"cmd": "pin_tier", "tier": "int8", "backend": "onnxruntime", "id": "c1"}`` → the registered
``pin_tier`` handler (e.g. ``manager.pin``); ``{"cmd": "unpin_tier"}``;
``{"cmd": "set_thresholds", "psi_warn": 0.15, "psi_alert": 0.3}``; ``{"cmd": "status"}``.

Model rollout (``sdk.rollout.agent``): ``{"cmd": "deploy", "deployment": "d-1", "version": "1.2.0",
"sha256": "<64 hex>", "size": 123456, "url": "https://..." or "mqtt-chunks", "shadow": {...},
"canary": true}``; ``{"cmd": "promote", "deployment": "d-1"}``; ``{"cmd": "rollback", "to": "1.1.0"}``
(both optional); ``{"cmd": "discard", "deployment": "d-1"}``. Bundles sent as MQTT chunks go to
``ember/<fleet>/<device>/bundle/<deployment>``. Keys never travel here: devices trust only the
public keys configured on them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sdk.vocab import backend_problem, tier_problem

MAX_PAYLOAD = 4096
MAX_BUNDLE_BYTES = 1 << 30  # 1 GiB: a device's own limit (agent settings) is usually far lower
MQTT_CHUNKS = "mqtt-chunks"
SHADOW_KEYS = {"min_agreement": (0.0, 1.0), "max_p95_ms": (0.0, 1e6), "max_errors": (0, 1e9),
               "frames": (0, 1e7), "fraction": (0.0, 1.0), "cpu_budget": (0.0, 1.0), "max_drift": (0.0, 1e3),
               "timeout_s": (0.0, 1e6)}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


class CommandRejected(Exception):
    """The payload is not an allowed command; ``str(e)`` says why."""


@dataclass(frozen=True)
class Command:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    id: str = ""


def _tier(v: Any) -> str:
    if problem := tier_problem(v):
        raise CommandRejected(problem)
    return str(v)


def _backend(v: Any) -> str:
    if problem := backend_problem(v):
        raise CommandRejected(problem)
    return str(v)


def _psi(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < float(v) <= 10:
        raise CommandRejected(f"threshold {v!r} must be a number in (0, 10]")
    return float(v)


def _name(v: Any) -> str:
    if not isinstance(v, str) or not _NAME.match(v):
        raise CommandRejected(f"{v!r} must be 1-64 letters, digits or . _ + - (a deployment id or version)")
    return v


def _sha256(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"[0-9a-f]{64}", v):
        raise CommandRejected("sha256 must be 64 lower-case hex digits")
    return v


def _size(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= MAX_BUNDLE_BYTES:
        raise CommandRejected(f"size {v!r} must be an integer number of bytes in 1..{MAX_BUNDLE_BYTES}")
    return v


def _url(v: Any) -> str:
    if v == MQTT_CHUNKS:
        return v
    if not isinstance(v, str) or len(v) > 1024 or not re.match(r"^https?://[^\s/]+(/\S*)?$", v):
        raise CommandRejected(f"url must be an http(s):// URL of at most 1024 characters or {MQTT_CHUNKS!r}")
    return v


def _shadow(v: Any) -> dict[str, float]:
    if not isinstance(v, dict):
        raise CommandRejected(f"shadow must be an object with some of {', '.join(SHADOW_KEYS)}")
    out = {}
    for key, value in v.items():
        if key not in SHADOW_KEYS:
            raise CommandRejected(f"shadow: unknown criterion {key!r}; allowed: {', '.join(SHADOW_KEYS)}")
        lo, hi = SHADOW_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
            raise CommandRejected(f"shadow.{key} = {value!r} must be a number in [{lo:g}, {hi:g}]")
        out[key] = value
    return out


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise CommandRejected(f"{v!r} must be true or false")
    return v


# command -> {argument: (validator, required)}
SCHEMA: dict[str, dict[str, tuple[Any, bool]]] = {
    "pin_tier": {"tier": (_tier, True), "backend": (_backend, False)},
    "unpin_tier": {},
    "set_thresholds": {"psi_warn": (_psi, False), "psi_alert": (_psi, False)},
    "status": {},
    "deploy": {"deployment": (_name, True), "version": (_name, True), "sha256": (_sha256, True),
               "size": (_size, True), "url": (_url, True), "shadow": (_shadow, False), "canary": (_flag, False)},
    "promote": {"deployment": (_name, True)},
    "rollback": {"deployment": (_name, False), "to": (_name, False)},
    "discard": {"deployment": (_name, True)},
}


def parse_command(payload: bytes | str) -> Command:
    """Validate a command payload; raises ``CommandRejected`` naming the problem."""
    if len(payload) > MAX_PAYLOAD:
        raise CommandRejected(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD}-byte limit")
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise CommandRejected("payload is not JSON") from None
    if not isinstance(data, dict):
        raise CommandRejected("payload must be a JSON object with a \"cmd\" field")
    name = data.pop("cmd", None)
    cid = data.pop("id", "")
    if not isinstance(cid, str) or len(cid) > 64:
        raise CommandRejected("\"id\" must be a string of at most 64 characters")
    if name not in SCHEMA:
        raise CommandRejected(f"unknown command {name!r}; allowed: {', '.join(SCHEMA)}")
    spec = SCHEMA[name]
    unknown = set(data) - set(spec)
    if unknown:
        raise CommandRejected(f"{name}: unexpected field(s) {', '.join(sorted(unknown))}")
    args: dict[str, Any] = {}
    for key, (check, required) in spec.items():
        if key in data:
            args[key] = check(data[key])
        elif required:
            raise CommandRejected(f"{name}: missing field {key!r}")
    if name == "set_thresholds" and not args:
        raise CommandRejected("set_thresholds: give psi_warn and/or psi_alert")
    return Command(name, args, cid)
