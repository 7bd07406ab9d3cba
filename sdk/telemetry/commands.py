"""Remote commands on ``ember/<fleet>/<device>/cmd``: a small, validated set. Anything else is
rejected (``cmd.rejected`` event); payloads are data, never code.

``{"cmd": "pin_tier", "tier": "int8", "backend": "onnxruntime", "id": "c1"}`` → the registered
``pin_tier`` handler (e.g. ``manager.pin``); ``{"cmd": "unpin_tier"}``;
``{"cmd": "set_thresholds", "psi_warn": 0.15, "psi_alert": 0.3}``; ``{"cmd": "status"}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sdk.vocab import backend_problem, tier_problem

MAX_PAYLOAD = 4096


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


# command -> {argument: (validator, required)}
SCHEMA: dict[str, dict[str, tuple[Any, bool]]] = {
    "pin_tier": {"tier": (_tier, True), "backend": (_backend, False)},
    "unpin_tier": {},
    "set_thresholds": {"psi_warn": (_psi, False), "psi_alert": (_psi, False)},
    "status": {},
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
