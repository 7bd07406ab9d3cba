"""The dashboard's live view of a fleet: one ``FleetSubscriber`` feeding one ``FleetState`` (the same
telemetry path as ``ember fleet watch``), a change counter for the live stream, JSON snapshots, and
the sender of remote commands over the validated ``…/cmd`` channel."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import threading
import time
from typing import Any

from sdk.errors import ConfigError, TelemetryError
from sdk.fleet.state import DeviceView, FleetState
from sdk.fleet.watch import FleetSubscriber
from sdk.optimize.energy import PowerFigure, power_for
from sdk.telemetry.commands import CommandRejected, parse_command
from sdk.telemetry.settings import TelemetrySettings
from sdk.util.jsonutil import jsonable

DEVICE_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")  # no MQTT wildcards or topic separators
EVENTS_SHOWN = 200


class UnknownDevice(TelemetryError):
    """A command names a device the dashboard has never heard from."""


class LiveFleet:
    """``start()`` subscribes to ``ember/<fleet>/#``; ``snapshot()`` is the page's JSON; ``changes``
    grows with every applied message; ``send_command(device, body)`` publishes a validated command."""

    def __init__(self, settings: TelemetrySettings, power_table: str | None = None) -> None:
        self.settings = settings
        self.state = FleetState(settings.fleet)
        self.lock = threading.Lock()
        self.changes = 0
        self.power_table = power_table
        self.sub: FleetSubscriber | None = None

    @classmethod
    def connect(cls, broker: str, fleet: str, **settings: Any) -> LiveFleet:
        """A ``LiveFleet`` for ``broker`` (``mqtt://host:1883``, ``mqtts://user:pass@host:8883``)."""
        if not broker:
            raise ConfigError("no broker: give --broker mqtt://host:1883 or set telemetry.broker")
        return cls(TelemetrySettings.from_config(None, broker=broker, fleet=fleet, **settings))

    @property
    def running(self) -> bool:
        return self.sub is not None

    def start(self, timeout: float = 5.0) -> LiveFleet:
        if self.sub is None:
            self.sub = FleetSubscriber(self.settings, self.on_message, client_id=f"ember-serve-{time.time_ns()}")
            try:
                self.sub.start(timeout)
            except BaseException:
                self.sub = None
                raise
        return self

    def stop(self) -> None:
        sub, self.sub = self.sub, None
        if sub is not None:
            sub.stop()

    def on_message(self, topic: str, payload: bytes) -> None:
        with self.lock:
            if self.state.apply(topic, payload) == "ok":
                self.changes += 1

    def touch(self) -> None:
        """Count a change made outside the telemetry (a deployment's status): the stream sends it."""
        with self.lock:
            self.changes += 1

    # -- the page's data ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Everything the page shows, as plain JSON types."""
        now = time.time()
        with self.lock:
            devices = [self._device(v, now) for v in self.state.rows()]
            events = list(self.state.events)[-EVENTS_SHOWN:][::-1]
            deployments = jsonable(getattr(self.state, "deployments", None) or {})
            malformed, changes = self.state.malformed, self.changes
        alerts = [{"device": d["device"], "features": sorted(k for k, s in d["drift"].items() if s == "alert")}
                  for d in devices if d["drift_state"] == "alert" or "alert" in d["drift"].values()]
        return {"fleet": self.settings.fleet, "now": now, "changes": changes, "devices": devices,
                "alerts": alerts, "events": jsonable(events), "deployments": deployments, "malformed": malformed}

    def _device(self, v: DeviceView, now: float) -> dict[str, Any]:
        d = {f.name: getattr(v, f.name) for f in dataclasses.fields(v) if f.name != "missing"}
        d["gaps"] = v.gaps
        d["age_s"] = round(now - v.last_seen, 1) if v.last_seen else None
        d["version"] = d.get("version") or d.get("model_version")
        d["energy_source"] = "device" if v.energy_mj is not None else None
        if v.energy_mj is None and v.p50_ms is not None:
            fig = self._power(v.device_class or "unknown")
            d["energy_mj"] = round(v.p50_ms * fig.watts, 3)  # the estimate of sdk.optimize.energy.energy_mj
            d["energy_source"] = f"estimate ({fig.watts:g} W, {fig.source})"
        return jsonable(d)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one LiveFleet per dashboard, a few device classes
    def _power(self, device_class: str) -> PowerFigure:
        return power_for(device_class, self.power_table)

    # -- actions -------------------------------------------------------------------------------------
    def send_command(self, device: str, body: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Validate ``body`` (``{"cmd": "pin_tier", "tier": "int8"}``) exactly as the device will and
        publish it at QoS 1 on ``ember/<fleet>/<device>/cmd``. Raises ``CommandRejected``,
        ``UnknownDevice`` or ``TelemetryError``."""
        if not isinstance(device, str) or not DEVICE_ID.match(device):
            raise CommandRejected(f"device {device!r} is not a device id (letters, digits, _ . : -)")
        with self.lock:
            known = device in self.state.devices
        if not known:
            raise UnknownDevice(f"device {device!r} has not been seen on fleet {self.settings.fleet!r}")
        if not isinstance(body, dict):
            raise CommandRejected("the command must be a JSON object with a \"cmd\" field")
        body = {"id": f"dash-{time.time_ns()}", **body}
        payload = json.dumps(body).encode()
        cmd = parse_command(payload)
        if self.sub is None:
            raise TelemetryError("the dashboard is not connected to the broker")
        topic = f"ember/{self.settings.fleet}/{device}/cmd"
        info = self.sub.client.publish(topic, payload, qos=1)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError) as e:
            raise TelemetryError(f"command not delivered to the broker: {e}") from None
        if not info.is_published():
            raise TelemetryError(f"the broker did not acknowledge the command within {timeout:g} s")
        return {"device": device, "topic": topic, "cmd": cmd.name, "args": cmd.args, "id": cmd.id}
