"""``ember fleet watch``: subscribe to ``ember/<fleet>/#`` and show a live table of the fleet."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sdk.errors import TelemetryError
from sdk.fleet.state import FleetState
from sdk.telemetry.link import classify_connect_error, new_client
from sdk.telemetry.settings import TelemetrySettings

STATE_STYLE = {"ok": "green", "warn": "yellow", "alert": "bold red"}


def render(state: FleetState) -> Any:
    """A rich Table of ``state`` (imported lazily: rich is only needed for the terminal view)."""
    from rich.table import Table

    caption = time.strftime("%H:%M:%S")
    if state.deployments:
        dep = max(state.deployments.values(), key=lambda d: d.updated)
        done = sum(step == "promoted" for step in dep.devices.values())
        caption += f" — deployment {dep.id} ({dep.version}): {dep.phase}, {done} promoted"
    table = Table(title=f"ember fleet {state.fleet or '(all)'} — {len(state.devices)} devices", caption=caption)
    for col in ("device", "status", "model", "tier", "fps", "p95 ms", "battery", "temp °C", "drift", "gaps", "dups",
                "last event"):
        table.add_column(col)
    for d in state.rows():
        status = "[green]online" if d.online else "[red]offline" if d.online is False else "?"
        drift = " ".join(f"[{STATE_STYLE.get(s, 'white')}]{n}:{s}[/]" for n, s in sorted(d.drift.items())) or "-"
        model = (d.version or "-") + (f" (+{d.candidate})" if d.candidate else "")
        table.add_row(d.device, status, model, d.tier or "-", _fmt(d.fps), _fmt(d.p95_ms), _fmt(d.battery),
                      _fmt(d.temperature), drift, f"[red]{d.gaps}" if d.gaps else "0", str(d.duplicates),
                      d.last_event or "-")
    return table


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


class FleetSubscriber:
    """An MQTT subscriber that feeds every message of ``ember/<fleet>/#`` to ``on_message``.

    ``shared`` (a group name) subscribes as ``$share/<group>/ember/<fleet>/#`` so several monitors
    split the load on brokers with shared subscriptions.
    """

    def __init__(self, settings: TelemetrySettings, on_message: Callable[[str, bytes], None],
                 client_id: str = "", shared: str = "") -> None:
        self.s = settings
        topic = f"ember/{settings.fleet}/#"
        self.topic = f"$share/{shared}/{topic}" if shared else topic
        self.client = new_client(settings, client_id or f"ember-watch-{time.time_ns()}")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(self.topic, qos=1) if not rc.is_failure else None
        self.client.on_message = lambda c, u, m: on_message(m.topic, m.payload)
        self.connected = threading.Event()
        self.client.on_subscribe = lambda *a: self.connected.set()

    def start(self, timeout: float = 5.0) -> FleetSubscriber:
        try:
            self.client.connect(self.s.host, self.s.port, keepalive=30)
        except Exception as e:  # noqa: BLE001 - turned into a clear message
            raise TelemetryError(classify_connect_error(e, self.s)[1]) from None
        self.client.loop_start()
        if not self.connected.wait(timeout):
            self.stop()
            raise TelemetryError(f"no subscription to {self.topic} on {self.s.host}:{self.s.port} within "
                                 f"{timeout} s (credentials or ACL?)")
        return self

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def watch(settings: TelemetrySettings, refresh_s: float = 1.0, duration_s: float | None = None,
          shared: str = "") -> FleetState:
    """Run the live view until Ctrl-C (or ``duration_s``); returns the final state."""
    from rich.live import Live

    state = FleetState(settings.fleet)
    lock = threading.Lock()

    def on_message(topic: str, payload: bytes) -> None:
        with lock:
            state.apply(topic, payload)

    sub = FleetSubscriber(settings, on_message, shared=shared).start()
    end = None if duration_s is None else time.monotonic() + duration_s
    try:
        with Live(render(state), refresh_per_second=max(1, int(1 / refresh_s))) as live:
            while end is None or time.monotonic() < end:
                time.sleep(refresh_s)
                with lock:
                    live.update(render(state))
    except KeyboardInterrupt:
        pass
    finally:
        sub.stop()
    return state
