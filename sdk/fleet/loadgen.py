"""A load generator for recorder tests and ``bench/fleet_scale.py``: simulated devices that publish
telemetry-shaped messages (``seq`` and send time ``ts``, as the Ember publisher does) to
``ember/<fleet>/<device>/telemetry`` as fast as asked, over one paho MQTT v5 connection.

For realistic devices (drift, tier switches, a spool each) use ``ember fleet simulate``.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from sdk.errors import TelemetryError
from sdk.telemetry.link import classify_connect_error, new_client
from sdk.telemetry.settings import TelemetrySettings


def payload(fleet: str, device: str, seq: int, ts: float | None = None) -> bytes:
    """One telemetry message as an Ember device publishes it."""
    return json.dumps({"schema": 1, "device": device, "fleet": fleet, "type": "telemetry",
                       "ts": time.time() if ts is None else ts, "fps": 10.0, "latency_p50_ms": 5.0,
                       "latency_p95_ms": 7.0, "seq": seq}, separators=(",", ":")).encode()


def publish_load(broker: str, fleet: str, devices: list[str], per_device: int, rate: float = 0.0,
                 qos: int = 1, first_seq: int = 1, repeat: int = 1) -> dict[str, Any]:
    """Publish ``per_device`` messages for every device, interleaved, at ``rate`` messages/s in total
    (0: as fast as possible), each sent ``repeat`` times (a device re-sending after a reconnect).
    Returns once the broker acknowledged all (QoS 0: once all are written): ``{"sent", "seconds"}``."""
    s = TelemetrySettings(broker=broker, fleet=fleet).finish()
    c = new_client(s, f"ember-load-{time.time_ns()}")
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    acked, done = [0], threading.Event()
    total = per_device * len(devices) * repeat

    def on_publish(*_: Any) -> None:
        acked[0] += 1
        if acked[0] >= total:
            done.set()

    c.on_publish = on_publish
    try:
        c.connect(s.host, s.port, keepalive=30)
    except Exception as e:  # noqa: BLE001 - turned into a clear message
        raise TelemetryError(classify_connect_error(e, s)[1]) from None
    c.loop_start()
    start = time.monotonic()
    n = 0
    try:
        for seq in range(first_seq, first_seq + per_device):
            for d in devices:
                msg = payload(fleet, d, seq)
                for _ in range(repeat):
                    c.publish(f"ember/{fleet}/{d}/telemetry", msg, qos=qos)
                n += repeat
                if rate and n % 50 == 0 and (ahead := n / rate - (time.monotonic() - start)) > 0:
                    time.sleep(ahead)
        if not done.wait(max(30.0, total / 1000)):  # QoS 0: written to the socket
            raise TelemetryError(f"the broker took {acked[0]} of {total} messages in time")
    finally:
        seconds = time.monotonic() - start
        c.loop_stop()
        c.disconnect()
    return {"sent": n, "seconds": round(seconds, 3)}
