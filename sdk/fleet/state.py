"""The fleet model behind ``ember fleet watch``: what every device last said, de-duplicated by
``(device, seq)``, with sequence gaps flagged. No rendering here, so it is testable on its own."""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

MAX_TRACKED_MISSING = 10_000
EVENT_LOG_SIZE = 500


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

    @property
    def gaps(self) -> int:
        """Sequence numbers skipped and not (yet) received."""
        return len(self.missing)


class FleetState:
    """Feed it MQTT messages with ``apply(topic, payload)``; read ``devices`` and ``events`` (the
    fleet's event log, newest last: ``{"ts", "device", "kind", "level", "data"}``)."""

    def __init__(self, fleet: str | None = None, event_log_size: int = EVENT_LOG_SIZE) -> None:
        self.fleet = fleet
        self.devices: dict[str, DeviceView] = {}
        self.malformed = 0
        self.events: deque[dict[str, Any]] = deque(maxlen=event_log_size)

    def apply(self, topic: str, payload: bytes | str, now: float | None = None) -> str:
        """Apply one message; returns ``"ok"``, ``"duplicate"``, ``"ignored"`` or ``"malformed"``."""
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != "ember" or (self.fleet and parts[1] != self.fleet):
            return "ignored"
        _, _, device, channel = parts
        view = self.devices.setdefault(device, DeviceView(device))
        now = time.time() if now is None else now
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
        if b.get("drift_state"):
            view.drift.update(b["drift_state"])

    @staticmethod
    def _drift(view: DeviceView, b: dict[str, Any]) -> None:
        view.drift_state = b.get("state")
        for name, f in (b.get("features") or {}).items():
            if isinstance(f, dict) and "state" in f:
                view.drift[name] = f["state"]

    @staticmethod
    def _event(view: DeviceView, b: dict[str, Any]) -> None:
        kind = b.get("kind", "?")
        data = b.get("data") or {}
        if kind == "tier.switch":
            view.tier = data.get("tier") or data.get("to") or view.tier
        if kind == "drift.state" and "feature" in data:
            view.drift[data["feature"]] = data.get("state", "?")
        detail = data.get("message") or data.get("tier") or data.get("state") or data.get("reason") or ""
        view.last_event = f"{kind} {detail}".strip()[:60]

    def rows(self) -> list[DeviceView]:
        return [self.devices[k] for k in sorted(self.devices)]
