"""Fixtures: a real mosquitto per test module (``mosquitto -c FILE`` on a free loopback port, temp
dirs, no system service), an MQTT subscriber that records what arrives, and TLS certificates made
with the openssl CLI."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sdk.fleet.broker import LocalBroker


def _need(tool: str) -> None:
    if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
        pytest.skip(f"{tool} is not installed (apt-get install -y mosquitto openssl)")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A plain broker with persistence, shared by a test module. It saves its state on every
    change, so a persistent session survives a SIGKILL however busy the machine is."""
    _need("mosquitto")
    b = LocalBroker(persistence=True, extra="autosave_on_changes true\n", workdir=tmp_path_factory.mktemp("mosq"))
    b.start()
    yield b
    b.stop()


class Recorder:
    """A subscriber (persistent session, QoS 1) that keeps every message it gets."""

    def __init__(self, port: int, topic: str = "ember/#", client_id: str = "recorder", clean: bool = True) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                                  clean_session=clean)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((m.topic, m.payload, bool(m.retain)))

    def wait_for(self, pred, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if pred(list(self.messages)):
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def recorder(broker: LocalBroker) -> Iterator[Recorder]:
    r = Recorder(broker.port)
    time.sleep(0.2)
    yield r
    r.close()


def make_certs(d: Path) -> dict[str, Path]:
    """A CA, a broker certificate for 127.0.0.1/localhost, a client certificate, and a second
    unrelated CA (to test a wrong CA)."""
    _need("openssl")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    for ca in ("ca", "other-ca"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={ca}",
            "-keyout", f"{ca}.key", "-out", f"{ca}.crt")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
            "-out", f"{name}.csr")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-out", f"{name}.crt", "-extfile", "san.ext")
    return {n: d / n for n in ("ca.crt", "other-ca.crt", "server.crt", "server.key", "client.crt", "client.key")}
