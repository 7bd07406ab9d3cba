"""A cheap MQTT 3.1.1 publisher for ``fleet_scale.py``: QoS 1 PUBLISH packets written straight to a
socket, PUBACKs counted by a reader thread.

Why not paho: publishing costs paho ~110 µs of CPU per QoS 1 message here, more than the recorder's
whole path (broker + recorder + PostgreSQL); on a 2-core machine the load generator would then measure
itself. This one costs a few µs, so the CPU goes to what is measured. Payloads are the ones from
``sdk.fleet.loadgen.payload`` (telemetry-shaped, ``seq`` and send time ``ts``).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Any

from sdk.fleet.loadgen import payload


def _packet(header: int, body: bytes) -> bytes:
    n, length = len(body), bytearray()
    while True:
        n, digit = divmod(n, 128)
        length.append(digit | (0x80 if n else 0))
        if not n:
            return bytes([header]) + bytes(length) + body


def _utf8(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


class Blaster:
    """One MQTT connection that publishes QoS 1 messages and counts their PUBACKs."""

    def __init__(self, port: int, client_id: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(_packet(0x10, _utf8("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 60) + _utf8(client_id)))
        if self.sock.recv(4)[:1] != b"\x20":
            raise ConnectionError("no CONNACK")
        self.acked, self.mid = 0, 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        rest = 0
        while chunk := self.sock.recv(65536):  # only PUBACKs (4 bytes each) come back
            rest += len(chunk)
            self.acked += rest // 4
            rest %= 4

    def packet(self, topic: bytes, body: bytes) -> bytes:
        self.mid = self.mid % 65535 + 1
        return _packet(0x32, topic + struct.pack("!H", self.mid) + body)

    def close(self) -> None:
        self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()


def blast(port: int, fleet: str, devices: list[str], per_device: int, rate: float, tick: float = 0.005) -> dict[str, Any]:
    """Publish ``per_device`` messages for each device, interleaved, at ``rate`` messages/s; each
    message's ``ts`` is stamped just before its packet is written. Returns once all are acknowledged."""
    b = Blaster(port, f"blast-{time.time_ns()}")
    topics = [_utf8(f"ember/{fleet}/{d}/telemetry") for d in devices]
    total, sent, start = per_device * len(devices), 0, time.monotonic()
    while sent < total:
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        while sent - b.acked > 30000:  # stay well inside the 16-bit packet ids
            time.sleep(0.001)
        if due > sent:
            now = time.time()
            b.sock.sendall(b"".join(b.packet(topics[i % len(devices)], payload(fleet, devices[i % len(devices)],
                                                                               i // len(devices) + 1, now))
                                    for i in range(sent, due)))
            sent = due
        time.sleep(tick)
    seconds = time.monotonic() - start
    deadline = time.monotonic() + 60
    while b.acked < total and time.monotonic() < deadline:
        time.sleep(0.01)
    acked = b.acked
    b.close()
    return {"sent": sent, "acked": acked, "seconds": round(seconds, 3)}
