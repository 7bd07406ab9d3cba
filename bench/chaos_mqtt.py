"""Chaos: 10,000 QoS 1 messages through the spool while the broker is SIGKILLed and restarted 5 times.

A real mosquitto on a loopback port with persistence on; a subscriber with a persistent session
(clean_session False, QoS 1) records what arrives. Stops by itself (time-bounded).

    .venv/bin/python bench/chaos_mqtt.py [--messages 10000] [--restarts 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paho.mqtt.client as mqtt
from _util import load, write_result
from paho.mqtt.enums import CallbackAPIVersion

from sdk.events import EventBus
from sdk.fleet.broker import LocalBroker
from sdk.telemetry import Telemetry, TelemetrySettings

PERSIST = "autosave_on_changes true\n"  # with autosave_interval 1: save the broker state on every change


def subscriber(port: int, received: dict[int, int], lock: threading.Lock) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="chaos-sub", protocol=mqtt.MQTTv311, clean_session=False)

    def on_message(_c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        seq = json.loads(m.payload)["seq"]
        with lock:
            received[seq] = received.get(seq, 0) + 1

    c.on_message = on_message
    c.on_connect = lambda cl, u, f, rc, p: cl.subscribe("ember/chaos/dev/events", qos=1)
    c.reconnect_delay_set(0.05, 0.2)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--restarts", type=int, default=5)
    ap.add_argument("--time-limit", type=float, default=240.0)
    a = ap.parse_args()
    load_before = load()
    t_start = time.monotonic()
    received: dict[int, int] = {}
    lock = threading.Lock()
    with tempfile.TemporaryDirectory() as d, LocalBroker(persistence=True, extra=PERSIST, workdir=Path(d) / "b") as broker:
        sub = subscriber(broker.port, received, lock)
        time.sleep(1.5)  # the session is saved
        s = TelemetrySettings(broker=broker.url, fleet="chaos", device_id="dev", spool=str(Path(d) / "dev.spool"),
                              reconnect_min_s=0.05, reconnect_max_s=0.5).finish()
        tel = Telemetry(s, kind="image", bus=EventBus()).start()
        tel.wait_connected(5)
        sent_seqs = []
        kill_at = {int(a.messages * (k + 1) / (a.restarts + 1)) for k in range(a.restarts)}
        for i in range(a.messages):
            seq = tel.publish("events", {"kind": "chaos", "data": {"i": i}})
            if seq is not None:
                sent_seqs.append(seq)
            if i in kill_at:
                broker.kill()  # SIGKILL while messages are in flight
                time.sleep(0.3)
                broker.start()
                broker.restarts += 1
            if i % 500 == 0:
                time.sleep(0.01)
        drained = tel.flush(timeout=max(5.0, a.time_limit - (time.monotonic() - t_start)))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with lock:
                if set(sent_seqs) <= set(received):
                    break
            time.sleep(0.1)
        status = tel.status()
        tel.close()
        sub.loop_stop()
        sub.disconnect()
        restarts = broker.restarts
    with lock:
        got = dict(received)
    sent = set(sent_seqs)
    lost = sorted(sent - set(got))
    write_result("chaos_mqtt", {
        "sent": len(sent_seqs), "received_unique": len(sent & set(got)),
        "duplicates": sum(n - 1 for n in got.values()), "lost": len(lost), "lost_examples": lost[:10],
        "broker_restarts": restarts, "spool_drained": drained, "spool": status["spool"], "link": status["link"],
        "seconds": round(time.monotonic() - t_start, 1),
        "note": "publisher: Telemetry.publish (SQLite spool, QoS 1, deleted on PUBACK); broker SIGKILLed and "
                "restarted with persistence (autosave on every change); subscriber persistent session, QoS 1",
        "command": "python bench/chaos_mqtt.py",
    }, load_before)


if __name__ == "__main__":
    main()
