"""``ember fleet watch``: subscribe to ``ember/<fleet>/#`` and show a live table of the fleet."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

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


class BufferedClient(mqtt.Client):
    """A paho client for subscribers that take thousands of messages per second.

    paho reads a packet with several ``recv()`` calls and handles one packet per ``select()``
    wake-up; this one reads up to 64 KiB at a time and handles every complete packet it holds. With
    ``on_raw`` set, a QoS 0/1 PUBLISH without MQTT v5 properties goes straight to
    ``on_raw(topic, payload, mid, qos)``, skipping paho's per-message objects (its MQTT v5
    ``Properties`` alone cost a fifth of a recorder's CPU); anything else takes paho's own path.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf, self._rpos = b"", 0
        self.on_raw: Callable[[str, bytes, int, int], None] | None = None

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rpos >= len(self._rbuf):
            self._rbuf, self._rpos = super()._sock_recv(65536), 0  # BlockingIOError when nothing is there
            if not self._rbuf:
                return b""  # connection closed
        data = self._rbuf[self._rpos:self._rpos + bufsize]
        self._rpos += len(data)
        return data

    def _sock_close(self) -> None:
        self._rbuf, self._rpos = b"", 0
        super()._sock_close()

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while rc == mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS and self._rpos < len(self._rbuf) and self._sock is not None:
            rc = super().loop_read(max_packets)
        return rc

    def _handle_publish(self) -> mqtt.MQTTErrorCode:
        header, packet = self._in_packet["command"], self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        if self.on_raw is None or qos == 2 or self._protocol != mqtt.MQTTv5 or len(packet) < 3:
            return super()._handle_publish()
        end = 2 + int.from_bytes(packet[:2], "big")
        mid = int.from_bytes(packet[end:end + 2], "big") if qos else 0
        pos = end + (2 if qos else 0)
        if pos >= len(packet) or packet[pos] != 0:  # properties (or a malformed packet): paho's path
            return super()._handle_publish()
        try:
            topic = packet[2:end].decode()
        except UnicodeDecodeError:
            return super()._handle_publish()
        self.on_raw(topic, bytes(packet[pos + 1:]), mid, qos)
        return self._send_puback(mid) if qos and not self._manual_ack else mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS


class FleetSubscriber:
    """An MQTT subscriber that feeds every message of ``ember/<fleet>/#`` to ``on_message``.

    ``shared`` (a group name) subscribes as ``$share/<group>/ember/<fleet>/#`` so several monitors
    split the load on brokers with shared subscriptions. ``receive_max`` (MQTT v5 Receive Maximum)
    caps the messages the broker sends before this client acknowledges them; ``session_expiry_s``
    keeps the session (subscription and queued messages) on the broker across reconnects.
    ``connects`` counts successful connections.
    """

    def __init__(self, settings: TelemetrySettings, on_message: Callable[[str, bytes], None],
                 client_id: str = "", shared: str = "", receive_max: int = 0, session_expiry_s: int = 0) -> None:
        self.s = settings
        topic = f"ember/{settings.fleet}/#"
        self.topic = f"$share/{shared}/{topic}" if shared else topic
        self.client = new_client(settings, client_id or f"ember-watch-{time.time_ns()}", BufferedClient)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, m: on_message(m.topic, m.payload)
        self.connected = threading.Event()
        self.connects = 0
        self.client.on_subscribe = lambda *a: self.connected.set()
        self.props = Properties(PacketTypes.CONNECT)
        if receive_max:
            self.props.ReceiveMaximum = min(receive_max, 65535)
        if session_expiry_s:
            self.props.SessionExpiryInterval = session_expiry_s
        self.clean_start = not session_expiry_s

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure:
            self.connects += 1
            client.subscribe(self.topic, qos=1)

    def start(self, timeout: float = 5.0) -> FleetSubscriber:
        try:
            self.client.connect(self.s.host, self.s.port, keepalive=30, clean_start=self.clean_start,
                                properties=self.props)
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
