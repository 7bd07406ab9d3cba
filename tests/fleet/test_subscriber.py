"""FleetSubscriber's buffered reader (64 KiB reads, every complete packet per wake-up) as
``ember fleet watch`` uses it: paho's own message path, every message in order, large ones too."""

from __future__ import annotations

import time

from sdk.fleet.loadgen import publish_load
from sdk.fleet.watch import FleetSubscriber
from sdk.telemetry.settings import TelemetrySettings


def test_every_message_arrives_in_order_through_the_buffered_reader(broker) -> None:
    from paho.mqtt import publish

    got: list[tuple[str, bytes]] = []
    sub = FleetSubscriber(TelemetrySettings(broker=broker.url, fleet="f").finish(),
                          lambda t, p: got.append((t, p))).start()
    try:
        publish_load(broker.url, "f", ["a", "b"], per_device=400)
        big = b'{"seq": 1, "blob": "' + b"x" * 200_000 + b'"}'  # spans several 64 KiB reads
        publish.single("ember/f/c/events", big, qos=1, hostname="127.0.0.1", port=broker.port)
        deadline = time.monotonic() + 15
        while len(got) < 801 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sub.stop()
    assert len(got) == 801 and got[-1] == ("ember/f/c/events", big)
    seqs = [int(p.split(b'"seq":')[1].split(b"}")[0]) for t, p in got[:-1] if t == "ember/f/a/telemetry"]
    assert seqs == list(range(1, 401))
