"""The fleet model behind ``ember fleet watch``: what every device last said, de-duplicated by
``(device, seq)``, with sequence gaps flagged. No rendering here, so it is testable on its own.

Model rollout: devices' ``rollout.*`` events and ``model_version`` telemetry set each device's
``version``/``candidate``; the fleet controller's steps (``ember/<fleet>/_deploy/events``, see
``sdk.rollout.deploy``) fill ``deployments`` (phase: canary, soak, widening, done, rolled_back, failed)."""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

MAX_TRACKED_MISSING = 10_000
EVENT_LOG_SIZE = 500
DEPLOY_DEVICE = "_deploy"  # the pseudo device the fleet controller publishes its steps under
MAX_DEPLOY_STEPS = 200
SHADOW_FIELDS = ("decision", "reasons", "frames", "agreement", "candidate_p50_ms", "candidate_p95_ms",
                 "active_p95_ms", "errors", "drift_psi")


@dataclass
class DeviceView:
    """The latest known state of one device."""

    device: str
    online: bool | None = None
    tier: str | None = None
    fps: float | None = None
    p95_ms: float | None = None
    battery: float | None = None
    temperature: float | None = None
    p50_ms: float | None = None
    cpu: float | None = None
    energy_mj: float | None = None
    device_class: str | None = None
    drift: dict[str, str] = field(default_factory=dict)
    drift_state: str | None = None
    last_event: str | None = None
    last_seen: float = 0.0
    max_seq: int = 0
    missing: set[int] = field(default_factory=set)
    received: int = 0
    duplicates: int = 0
    version: str | None = None
    candidate: str | None = None
    rollout: str | None = None  # the device's last rollout step, e.g. "promoted 1.2.0 (d-1)"

    @property
    def gaps(self) -> int:
        """Sequence numbers skipped and not (yet) received."""
        return len(self.missing)


@dataclass
class DeploymentView:
    """One deployment as the fleet controller and the devices report it."""

    id: str
    version: str | None = None
    phase: str = "started"
    canaries: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    devices: dict[str, str] = field(default_factory=dict)  # device -> its last rollout step
    details: dict[str, dict[str, Any]] = field(default_factory=dict)  # device -> shadow report, refusal reason
    steps: list[dict[str, Any]] = field(default_factory=list)
    updated: float = 0.0


class FleetState:
    """Feed it MQTT messages with ``apply(topic, payload)``; read ``devices`` and ``events`` (the
    fleet's event log, newest last: ``{"ts", "device", "kind", "level", "data"}``)."""

    def __init__(self, fleet: str | None = None, event_log_size: int = EVENT_LOG_SIZE) -> None:
        self.fleet = fleet
        self.devices: dict[str, DeviceView] = {}
        self.deployments: dict[str, DeploymentView] = {}
        self.malformed = 0
        self.events: deque[dict[str, Any]] = deque(maxlen=event_log_size)

    def apply(self, topic: str, payload: bytes | str, now: float | None = None) -> str:
        """Apply one message; returns ``"ok"``, ``"duplicate"``, ``"ignored"`` or ``"malformed"``."""
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != "ember" or (self.fleet and parts[1] != self.fleet):
            return "ignored"
        _, _, device, channel = parts
        now = time.time() if now is None else now
        if device == DEPLOY_DEVICE:
            return self._deploy_step(payload, now)
        view = self.devices.setdefault(device, DeviceView(device))
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            body = payload.decode(errors="replace") if isinstance(payload, bytes) else payload
        if channel == "status":
            state = body.get("state") if isinstance(body, dict) else str(body)
            if view.online != (state == "online"):
                self.events.append({"ts": now, "device": device, "kind": f"status.{state}", "level": "info",
                                    "data": {}})
            view.online = state == "online"
            view.last_seen = now
            return "ok"
        if channel == "cmd":
            return "ignored"
        if not isinstance(body, dict) or not isinstance(body.get("seq"), int):
            self.malformed += 1
            return "malformed"
        if not self._sequence(view, body["seq"]):
            return "duplicate"
        view.last_seen = now
        view.received += 1
        if channel == "telemetry":
            self._telemetry(view, body)
        elif channel == "drift":
            self._drift(view, body)
        elif channel == "events":
            self._event(view, body)
            data = body.get("data") if isinstance(body.get("data"), dict) else {}
            self.events.append({"ts": body.get("event_ts") or body.get("ts") or now, "device": device,
                                "kind": str(body.get("kind", "?")), "level": str(data.get("level") or "info"),
                                "data": data})
        return "ok"

    @staticmethod
    def _sequence(view: DeviceView, seq: int) -> bool:
        if seq in view.missing:
            view.missing.discard(seq)  # arrived late
            return True
        if view.max_seq and seq <= view.max_seq:
            view.duplicates += 1
            return False
        if view.max_seq and seq > view.max_seq + 1 and len(view.missing) < MAX_TRACKED_MISSING:
            view.missing.update(range(view.max_seq + 1, min(seq, view.max_seq + 1 + MAX_TRACKED_MISSING)))
        view.max_seq = seq
        return True

    @staticmethod
    def _telemetry(view: DeviceView, b: dict[str, Any]) -> None:
        view.online = True
        view.tier = b.get("tier") or view.tier
        view.fps = b.get("fps")
        view.p95_ms = b.get("latency_p95_ms")
        view.p50_ms = b.get("latency_p50_ms")
        view.energy_mj = b.get("energy_mj")
        view.device_class = b.get("device_class") or view.device_class
        ds = b.get("device_state") or {}
        view.battery = ds.get("battery_percent")
        view.temperature = ds.get("temperature_c")
        view.cpu = ds.get("cpu_percent")
        view.version = b.get("model_version") or view.version
        if b.get("drift_state"):
            view.drift.update(b["drift_state"])

    @staticmethod
    def _drift(view: DeviceView, b: dict[str, Any]) -> None:
        view.drift_state = b.get("state")
        for name, f in (b.get("features") or {}).items():
            if isinstance(f, dict) and "state" in f:
                view.drift[name] = f["state"]

    def _event(self, view: DeviceView, b: dict[str, Any]) -> None:
        kind = b.get("kind", "?")
        data = b.get("data") or {}
        if kind == "tier.switch":
            view.tier = data.get("tier") or data.get("to") or view.tier
        if kind.startswith("rollout."):
            self._rollout(view, kind, data)
        if kind == "drift.state" and "feature" in data:
            view.drift[data["feature"]] = data.get("state", "?")
        detail = data.get("message") or data.get("tier") or data.get("state") or data.get("reason") or ""
        view.last_event = f"{kind} {detail}".strip()[:60]

    def _rollout(self, view: DeviceView, kind: str, data: dict[str, Any]) -> None:
        step = kind.split(".", 1)[1]
        if data.get("active"):
            view.version = data["active"]
        if "candidate" in data:
            view.candidate = data["candidate"]
        dep = data.get("deployment")
        view.rollout = f"{step} {data.get('version') or ''} ({dep or '-'})"
        if isinstance(dep, str):
            d = self.deployments.setdefault(dep, DeploymentView(dep, data.get("version")))
            d.devices[view.device] = step
            d.updated = time.time()
            info = {k: data[k] for k in SHADOW_FIELDS if data.get(k) is not None} if step == "shadow" else {}
            info.update({k: data[k] for k in ("reason", "message", "error") if data.get(k)})
            if info:
                d.details.setdefault(view.device, {}).update(info)

    def _deploy_step(self, payload: bytes | str, now: float) -> str:
        try:
            body = json.loads(payload)
            data, dep = body["data"], body["data"]["deployment"]
        except (ValueError, UnicodeDecodeError, TypeError, KeyError):
            self.malformed += 1
            return "malformed"
        d = self.deployments.setdefault(str(dep), DeploymentView(str(dep)))
        d.version = data.get("version") or d.version
        d.phase = data.get("phase") or d.phase
        for key in ("canaries", "targets"):
            if isinstance(data.get(key), list):
                setattr(d, key, [str(x) for x in data[key]])
        d.steps = [*d.steps, {"kind": body.get("kind"), "ts": body.get("ts"), "phase": d.phase,
                              "message": data.get("message", "")}][-MAX_DEPLOY_STEPS:]
        d.updated = now
        level = data.get("level") or ("warning" if "roll" in str(d.phase) or "fail" in str(d.phase) else "info")
        self.events.append({"ts": body.get("ts") or now, "device": DEPLOY_DEVICE, "kind": str(body.get("kind")),
                            "level": str(level), "data": data})
        return "ok"

    def rows(self) -> list[DeviceView]:
        return [self.devices[k] for k in sorted(self.devices)]
