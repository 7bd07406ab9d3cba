"""``Telemetry``: statistics, drift and publishing for one device.

    tel = Telemetry.from_config(config, kind="image", profile=ReferenceProfile.load("models/det"))
    tel.start()
    tel.observe(frame, output)              # every frame: features + drift (≈ tens of µs)
    tel.publish_telemetry(fps=29.8, latency_p50_ms=12.1, latency_p95_ms=15.0)   # e.g. at 1 Hz
    tel.close()

Everything published goes through the spool first; with no broker configured the spool is the
record (``ember fleet report --spool FILE``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from sdk.errors import TelemetryError
from sdk.events import Event, EventBus, default_bus
from sdk.telemetry.commands import Command, CommandRejected, parse_command
from sdk.telemetry.drift import DriftDetector, Thresholds
from sdk.telemetry.features import DEFAULT_RANGES, FeatureExtractor, feature_names, parse_output
from sdk.telemetry.link import SCHEMA_VERSION, MqttLink
from sdk.telemetry.profile import ReferenceProfile
from sdk.telemetry.settings import TelemetrySettings
from sdk.telemetry.spool import Spool
from sdk.telemetry.stats import Binning, RollingWindow

Handler = Callable[..., Any]


class Telemetry:
    """Statistics + drift + store-and-forward publishing for one device; thread-safe publishing."""

    def __init__(self, settings: TelemetrySettings, kind: str | None = None,
                 profile: ReferenceProfile | None = None, labels: Sequence[str] | None = None,
                 bus: EventBus | None = None, device_state: Callable[[], dict[str, Any]] | None = None,
                 sample_rate: int | None = None) -> None:
        self.settings = settings
        self.kind = kind or settings.kind or (profile.kind if profile else "image")
        if settings.profile and profile is None:
            profile = ReferenceProfile.load(settings.profile)
        if profile is not None and profile.kind != self.kind:
            raise TelemetryError(f"reference profile is for {profile.kind!r} data but telemetry kind is {self.kind!r}")
        self.profile = profile
        self.labels = list(labels or (profile.classes or {}).get("labels", []) if profile else labels or [])
        self.bus = bus or default_bus
        self.device_state = device_state or _default_device_state()
        self.extractor = FeatureExtractor(self.kind, sample_rate)
        names = feature_names(self.kind)
        self._n_in = len(self.extractor.names)
        self._values = np.full(len(names), np.nan)
        binning = profile.binning() if profile else Binning(
            names, [DEFAULT_RANGES[n][0] for n in names], [DEFAULT_RANGES[n][1] for n in names], 10)
        self.window = RollingWindow(binning, len(self.labels), settings.window_block, settings.window_blocks)
        thresholds = Thresholds(psi_warn=settings.psi_warn, psi_alert=settings.psi_alert,
                                min_frames=settings.window_block * settings.window_blocks)
        self.drift = DriftDetector(profile, thresholds, self.bus) if profile else None
        self.spool = Spool(settings.spool, settings.spool_max_bytes, settings.spool_full_policy)
        self.tier: str | None = None
        self.last_event: dict[str, Any] | None = None
        self.frames = 0
        self.handlers: dict[str, Handler] = {}
        self.link: MqttLink | None = None
        self.on_bundle: Callable[[str, bytes], None] | None = None  # set before start() (sdk.rollout.agent)
        self._unsubscribe: Callable[[], None] | None = None
        self._local = threading.local()
        self._reported_counters = dict(self.spool.counters)
        self._last_drift_pub = -1e9
        self._last_drift_states: dict[str, Any] = {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None, **kwargs: Any) -> Telemetry:
        """Settings from the ``[telemetry]`` section; ``kwargs`` are settings keys or constructor args."""
        ctor = {k: kwargs.pop(k) for k in ("kind", "profile", "labels", "bus", "device_state", "sample_rate")
                if k in kwargs}
        if isinstance(ctor.get("profile"), str):
            ctor["profile"] = ReferenceProfile.load(ctor["profile"])
        settings = TelemetrySettings.from_config(config, **kwargs)
        return cls(settings, **ctor)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Telemetry:
        """Subscribe to the event bus and, if a broker is configured, start the MQTT link."""
        if self._unsubscribe is None:
            self._unsubscribe = self.bus.subscribe(self._on_event)
        if self.settings.broker and self.link is None:
            self.link = MqttLink(self.settings, self.spool, self._link_error, self.handle_command,
                                 on_bundle=self.on_bundle)
            self.link.start()
        return self

    def wait_connected(self, timeout: float = 5.0) -> None:
        """Block until connected; raises TelemetryError with the last connection error otherwise."""
        if self.link is None:
            raise TelemetryError("no broker configured (telemetry.broker): telemetry stays in the spool "
                                 f"{self.settings.spool}")
        if not self.link.connected.wait(timeout):
            why = self.link.last_error[1] if self.link.last_error else "no answer from the broker"
            raise TelemetryError(f"not connected to {self.settings.broker} after {timeout:g} s: {why}")

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the spool is empty (everything acknowledged); False on timeout or no broker."""
        deadline = time.monotonic() + timeout
        while self.spool.count and time.monotonic() < deadline:
            if self.link is None:
                return False
            self.link.kick()
            time.sleep(0.01)
        return self.spool.count == 0

    def close(self, flush_timeout: float = 2.0) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self.link is not None:
            self.link.stop(flush_timeout)
            self.link = None
        self.spool.close()

    def __enter__(self) -> Telemetry:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- statistics and drift ---------------------------------------------------------------------
    def observe(self, data: Any, output: Any = None, meta: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """Add one frame (input ``data`` and, optionally, the model ``output``). Returns the drift
        report when a window block completes, else None. Reports are published on ``…/drift`` when a
        feature's state changes and at least every ``drift_interval_s`` otherwise."""
        values = self._values
        values[: self._n_in] = self.extractor(data, meta)
        values[self._n_in:] = np.nan
        cur = self.window.current
        if output is not None:
            classes, confs, emb = parse_output(output)
            if confs.size == 1:
                values[self._n_in] = confs[0]
            elif confs.size:
                cur.add_many(self._n_in, confs)
            cur.add_classes(classes)
            if emb is not None:
                values[self._n_in + 1] = float(np.sqrt(emb @ emb))
                cur.add_embedding(emb)
        cur.add(values)
        self.frames += 1
        merged = self.window.frame_done()
        if merged is None:
            return None
        report = self.drift.evaluate(merged) if self.drift else {"state": "unknown", "frames": merged.frames,
                                                                 "features": {}}
        states = {k: f.get("state") for k, f in report["features"].items()}
        now = time.monotonic()
        if states != self._last_drift_states or now - self._last_drift_pub >= self.settings.drift_interval_s:
            report["summary"] = {k: v["mean"] for k, v in merged.summary()["features"].items()}
            self.publish("drift", report)
            self._last_drift_pub, self._last_drift_states = now, states
        return report

    def set_thresholds(self, psi_warn: float | None = None, psi_alert: float | None = None) -> Thresholds:
        if self.drift is None:
            raise TelemetryError("no reference profile loaded: drift thresholds do not apply")
        self.drift.thresholds = self.drift.thresholds.update(psi_warn=psi_warn, psi_alert=psi_alert)
        return self.drift.thresholds

    # -- publishing -------------------------------------------------------------------------------
    def publish(self, channel: str, body: Mapping[str, Any], qos: int | None = None) -> int | None:
        """Spool one message for ``ember/<fleet>/<device>/<channel>``; returns its seq (None if the
        spool refused it: counted, and reported as a ``telemetry.spool`` event)."""
        kind = {"telemetry": "telemetry", "drift": "drift"}.get(channel, "event")
        if qos is None:
            qos = self.settings.telemetry_qos if kind == "telemetry" else 1
        msg = {"schema": SCHEMA_VERSION, "device": self.settings.device_id, "fleet": self.settings.fleet,
               "type": channel, "ts": time.time(), **body}
        seq = self.spool.put(f"{self.settings.base_topic}/{channel}", kind, msg, qos)
        if self.link is not None:
            self.link.kick()
        if self.spool.counters != self._reported_counters:
            self._report_spool_counters()
        return seq

    def publish_telemetry(self, fps: float | None = None, latency_p50_ms: float | None = None,
                          latency_p95_ms: float | None = None, drops: int | None = None,
                          **extra: Any) -> int | None:
        """Publish one telemetry sample: rates, tier, device state, drops, spool counters."""
        body = {"fps": fps, "latency_p50_ms": latency_p50_ms, "latency_p95_ms": latency_p95_ms,
                "tier": self.tier, "drops": drops, "frames": self.frames, "device_state": self.device_state(),
                "spool": self.spool.stats(), **extra}
        if self.drift is not None:
            body["drift_state"] = dict(self.drift.states)
        return self.publish("telemetry", body)

    def status(self) -> dict[str, Any]:
        """A full status snapshot (also the answer to the ``status`` command)."""
        link = self.link
        return {"device": self.settings.device_id, "kind": self.kind, "tier": self.tier, "frames": self.frames,
                "broker": self.settings.broker or None, "connected": bool(link and link.connected.is_set()),
                "link": dict(link.counts) if link else None, "spool": self.spool.stats(),
                "drift": self.drift.last if self.drift else None,
                "thresholds": vars(self.drift.thresholds) if self.drift else None,
                "last_event": self.last_event, "device_state": self.device_state()}

    # -- events and commands ----------------------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        if getattr(self._local, "busy", False):
            return  # an event raised while spooling one: counted in the spool, not re-spooled
        if event.kind == "tier.switch":
            self.tier = event.data.get("tier") or event.data.get("to") or self.tier
        self.last_event = {"kind": event.kind, "ts": event.timestamp}
        self._local.busy = True
        try:
            self.publish("events", {"kind": event.kind, "data": dict(event.data), "event_ts": event.timestamp})
        finally:
            self._local.busy = False

    def _report_spool_counters(self) -> None:
        changed = {k: v for k, v in self.spool.counters.items() if v != self._reported_counters.get(k)}
        self._reported_counters = dict(self.spool.counters)
        self._last_drift_pub = -1e9  # the spool may have lost a drift report: send the next one in any case
        self._last_drift_states = {}
        self.bus.publish("telemetry.spool", level="error", changed=changed, counters=dict(self.spool.counters),
                         message=f"spool {self.settings.spool}: {changed} (full or disk full; see telemetry "
                                 "spool_max_bytes/spool_full_policy)")

    def _link_error(self, code: str, message: str) -> None:
        self.bus.publish("telemetry.error", code=code, message=message)

    def register_handler(self, command: str, fn: Handler) -> None:
        """Handle remote ``command`` (``pin_tier`` → ``fn(tier=..., backend=...)``, ``unpin_tier`` → ``fn()``)."""
        self.handlers[command] = fn

    def handle_command(self, payload: bytes | str) -> dict[str, Any]:
        """Validate and run one remote command; the result is published as ``cmd.result`` or
        ``cmd.rejected``/``cmd.failed`` events and returned."""
        try:
            cmd = parse_command(payload)
        except CommandRejected as e:
            self.bus.publish("cmd.rejected", level="error", reason=str(e),
                             payload=(payload[:200].decode("utf-8", "replace")
                                      if isinstance(payload, bytes) else str(payload)[:200]))
            return {"ok": False, "error": str(e)}
        try:
            result = self._run_command(cmd)
        except CommandRejected as e:
            self.bus.publish("cmd.rejected", level="error", cmd=cmd.name, id=cmd.id, reason=str(e))
            return {"ok": False, "error": str(e)}
        except Exception as e:  # noqa: BLE001 - a handler failure is reported, never kills telemetry
            self.bus.publish("cmd.failed", level="error", cmd=cmd.name, id=cmd.id, error=f"{type(e).__name__}: {e}")
            return {"ok": False, "error": str(e)}
        self.bus.publish("cmd.result", cmd=cmd.name, id=cmd.id, result=result)
        return {"ok": True, "result": result}

    def _run_command(self, cmd: Command) -> Any:
        if cmd.name == "set_thresholds":
            if self.drift is None:
                raise CommandRejected("no reference profile on this device: thresholds do not apply")
            try:
                return vars(self.set_thresholds(**cmd.args))
            except TelemetryError as e:
                raise CommandRejected(str(e)) from None
        if cmd.name == "status":
            return self.status()
        handler = self.handlers.get(cmd.name)
        if handler is None:
            raise CommandRejected(f"{cmd.name}: no handler registered on this device")
        out = handler(**cmd.args)
        return out if isinstance(out, (dict, list, str, int, float, bool, type(None))) else str(out)


def _default_device_state() -> Callable[[], dict[str, Any]]:
    """The real readers of ``sdk.device`` (CPU, memory, battery, temperature, Jetson power mode)."""
    from sdk.device import Device

    device = Device()
    return lambda: device.snapshot().as_dict()
