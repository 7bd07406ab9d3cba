"""SIGKILL a spooling publisher 100 times at random moments: the spool must stay readable with no
corrupt record, and every message that was committed (and so every one the broker acknowledged)
must be delivered to the subscriber or still be in the spool."""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sdk.fleet.broker import LocalBroker
from sdk.telemetry.link import MqttLink
from sdk.telemetry.settings import TelemetrySettings
from sdk.telemetry.spool import Spool, read_messages, verify

RUNS = 100
RECORD = 11  # "%010d\n"


def _log_ids(fd: int, ids: list[int]) -> None:
    os.write(fd, "".join(f"{i:010d}\n" for i in ids).encode())


def _read_ids(path: Path) -> set[int]:
    if not path.exists():
        return set()
    data = path.read_bytes()
    return {int(data[k:k + RECORD - 1]) for k in range(0, len(data) - RECORD + 1, RECORD)
            if data[k + RECORD - 1:k + RECORD] == b"\n"}


def _child(spool_path: Path, port: int, put_log: Path, ack_log: Path, seed: int) -> None:
    """Runs in the forked child until killed: spool and publish as fast as it can."""
    try:
        rnd = random.Random(seed)
        s = TelemetrySettings(broker=f"mqtt://127.0.0.1:{port}", fleet="kill", device_id="k1", spool=str(spool_path),
                              reconnect_min_s=0.02).finish()
        spool = Spool(spool_path)
        put_fd = os.open(put_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        ack_fd = os.open(ack_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        link = MqttLink(s, spool, on_error=lambda c, m: None, on_ack=lambda ids: _log_ids(ack_fd, ids))
        link.start()
        n = 0
        while True:
            seq = spool.put(f"{s.base_topic}/events", "event", {"n": n, "seed": seed}, qos=1)
            if seq is not None:
                _log_ids(put_fd, [seq])
            n += 1
            link.kick()
            time.sleep(rnd.random() * 0.003)
    finally:
        os._exit(0)


def _subscriber(port: int) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="kill-check", protocol=mqtt.MQTTv311, clean_session=False)
    return c


def test_sigkill_100_times_loses_nothing(tmp_path: Path) -> None:
    with LocalBroker(workdir=tmp_path / "broker") as broker:
        sub = _subscriber(broker.port)
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe("ember/kill/k1/events", qos=1)
        sub.loop(1.0)
        sub.loop(0.2)
        sub.disconnect()  # the persistent session queues QoS 1 messages while the test forks
        spool_path, put_log, ack_log = tmp_path / "k1.spool", tmp_path / "put.log", tmp_path / "ack.log"
        rnd = random.Random(42)
        for run in range(RUNS):
            pid = os.fork()
            if pid == 0:
                _child(spool_path, broker.port, put_log, ack_log, run)
            time.sleep(rnd.uniform(0.005, 0.25))
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        check = verify(spool_path)
        assert check["ok"], check
        spooled = set(check["ids"])
        put, acked = _read_ids(put_log), _read_ids(ack_log)
        assert len(put) > RUNS and acked, (len(put), len(acked))
        received: set[int] = set()
        sub = _subscriber(broker.port)
        sub.on_message = lambda c, u, m: received.add(int(__import__("json").loads(m.payload)["seq"]))
        sub.connect("127.0.0.1", broker.port)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not acked <= received | spooled:
            sub.loop(0.1)
        for _ in range(5):
            sub.loop(0.05)
        sub.disconnect()
    assert acked <= received | spooled, sorted(acked - received - spooled)[:20]
    assert put <= received | spooled, sorted(put - received - spooled)[:20]
    assert all(m["body"] is not None for m in read_messages(spool_path))
