"""Publishing to a real mosquitto: birth/last will, retained status, QoS 1 across a broker restart,
TLS, password file, ACL denial."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from sdk.errors import TelemetryError
from sdk.events import EventBus
from sdk.fleet.broker import LocalBroker
from sdk.telemetry import Telemetry

from .conftest import Recorder, make_certs


def _tel(tmp_path: Path, broker_url: str, bus: EventBus | None = None, **kw: object) -> Telemetry:
    section = {"broker": broker_url, "fleet": "t", "device_id": kw.pop("device_id", "dev1"),
               "spool": str(tmp_path / "spool.db"), "reconnect_min_s": 0.05, "reconnect_max_s": 0.5, **kw}
    return Telemetry.from_config({"telemetry": section}, bus=bus or EventBus())


def _bodies(rec: Recorder, suffix: str) -> list[dict]:
    return [json.loads(p) for t, p, _ in rec.messages if t.endswith(suffix)]


def test_birth_retained_status_and_last_will(broker: LocalBroker, tmp_path: Path) -> None:
    tel = _tel(tmp_path, broker.url, device_id="willdev", keepalive=1)
    tel.start()
    tel.wait_connected(5)
    # once any subscriber has seen "online" the broker holds it; a later subscriber must get it retained
    early = Recorder(broker.port, "ember/t/willdev/status", client_id="early")
    assert early.wait_for(lambda ms: any(json.loads(p)["state"] == "online" for _, p, _r in ms))
    early.close()
    late = Recorder(broker.port, "ember/t/willdev/status", client_id="late")
    assert late.wait_for(lambda ms: any(r and json.loads(p)["state"] == "online" for _, p, r in ms))
    # an unclean end (socket closed without DISCONNECT) makes the broker send the last will
    assert tel.link is not None and tel.link._client is not None
    tel.link._stop.set()
    tel.link._client.socket().close()
    tel.link._thread.join(5)  # type: ignore[union-attr]
    assert late.wait_for(lambda ms: any(json.loads(p)["state"] == "offline" for _, p, _r in ms), timeout=6)
    late.close()
    tel.spool.close()


def test_qos1_delivery_across_broker_restart(broker: LocalBroker, tmp_path: Path) -> None:
    rec = Recorder(broker.port, "ember/t/restart/events", client_id="restart-rec", clean=False)
    time.sleep(1.2)  # the broker autosaves the persistent session every second
    bus = EventBus()
    tel = _tel(tmp_path, broker.url, bus=bus, device_id="restart")
    tel.start()
    tel.wait_connected(5)
    for i in range(20):
        bus.publish("degrade.step", step=i)
    assert tel.flush(5)
    broker.kill()
    for i in range(20, 40):
        bus.publish("degrade.step", step=i)  # spooled while the broker is down
    assert tel.spool.count >= 20
    broker.start()
    assert tel.flush(10), tel.status()

    def steps(ms: list) -> list[dict]:
        bodies = [json.loads(p) for _, p, _ in ms]
        return [b for b in bodies if b["kind"] == "degrade.step"]

    assert rec.wait_for(lambda ms: len({b["seq"] for b in steps(ms)}) >= 40, timeout=10), len(rec.messages)
    got = steps(rec.messages)
    assert {b["data"]["step"] for b in got} == set(range(40))
    seqs = sorted({json.loads(p)["seq"] for _, p, _ in rec.messages})  # every event, any kind
    assert seqs == list(range(seqs[0], seqs[-1] + 1))  # sequence numbers without a gap
    rec.close()
    tel.close()


def test_connection_refused_is_a_clear_error(tmp_path: Path) -> None:
    from sdk.fleet.broker import free_port
    bus = EventBus()
    errors = []
    bus.subscribe(lambda e: errors.append(e) if e.kind == "telemetry.error" else None)
    tel = _tel(tmp_path, f"mqtt://127.0.0.1:{free_port()}", bus=bus)
    tel.start()
    with pytest.raises(TelemetryError, match="refused"):
        tel.wait_connected(1.0)
    assert tel.publish_telemetry(fps=1.0) is not None  # still spooled
    tel.close(flush_timeout=0)
    assert errors and "is the broker running" in errors[0].data["message"]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_certs(tmp_path_factory.mktemp("certs"))


def test_tls_with_client_certificate_and_wrong_ca(certs: dict[str, Path], tmp_path: Path) -> None:
    extra = (f"cafile {certs['ca.crt']}\ncertfile {certs['server.crt']}\nkeyfile {certs['server.key']}\n"
             "require_certificate true\n")
    with LocalBroker(extra=extra, workdir=tmp_path / "b") as b:
        ok = _tel(tmp_path / "ok", f"mqtts://127.0.0.1:{b.port}", ca_certs=str(certs["ca.crt"]),
                  certfile=str(certs["client.crt"]), keyfile=str(certs["client.key"]))
        ok.start()
        ok.wait_connected(5)
        ok.publish_telemetry(fps=3.0)
        assert ok.flush(5)
        ok.close()
        bad = _tel(tmp_path / "bad", f"mqtts://127.0.0.1:{b.port}", ca_certs=str(certs["other-ca.crt"]),
                   certfile=str(certs["client.crt"]), keyfile=str(certs["client.key"]))
        bad.start()
        with pytest.raises(TelemetryError, match="not trusted.*telemetry.ca_certs"):
            bad.wait_connected(2)
        bad.close(flush_timeout=0)


def test_password_file_and_acl_denial(tmp_path: Path) -> None:
    pw = tmp_path / "passwd"
    pw.touch()
    pw.chmod(0o600)
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "dev", "s3cret"], check=True, capture_output=True)
    acl = tmp_path / "acl"
    acl.write_text("user dev\ntopic write ember/t/dev/status\ntopic write ember/t/dev/telemetry\n"
                   "topic read ember/t/dev/cmd\n")
    with LocalBroker(extra=f"password_file {pw}\nacl_file {acl}\n", allow_anonymous=False,
                     workdir=tmp_path / "b") as b:
        bus = EventBus()
        errors = []
        bus.subscribe(lambda e: errors.append(e.data) if e.kind == "telemetry.error" else None)
        wrong = _tel(tmp_path / "w", f"mqtt://dev:nope@127.0.0.1:{b.port}", bus=bus, device_id="dev")
        wrong.start()
        with pytest.raises(TelemetryError, match="rejected the connection.*username/password"):
            wrong.wait_connected(2)
        wrong.close(flush_timeout=0)
        bus2 = EventBus()
        errors2 = []
        bus2.subscribe(lambda e: errors2.append(e.data) if e.kind == "telemetry.error" else None)
        tel = _tel(tmp_path / "r", f"mqtt://dev:s3cret@127.0.0.1:{b.port}", bus=bus2, device_id="dev")
        tel.start()
        tel.wait_connected(5)
        tel.publish_telemetry(fps=1.0)  # allowed
        tel.publish("drift", {"state": "ok"})  # not in the ACL: denied
        assert tel.flush(5)
        time.sleep(0.2)
        denied = [e for e in errors2 if e["code"] == "publish_denied"]
        assert denied and "ember/t/dev/drift" in denied[0]["message"]
        assert tel.spool.counters["denied"] >= 1  # the drift message (and the error events about it)
        assert tel.spool.count == 0  # denied messages leave the spool, counted, instead of blocking it
        tel.close()


def _send_command(port: int, device: str, payload: dict) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"operator-{device}")
    c.connect("127.0.0.1", port)
    c.loop_start()
    c.publish(f"ember/t/{device}/cmd", json.dumps(payload), qos=1).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()


def _wait(pred, timeout: float = 8.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


@pytest.mark.parametrize("expiry,delivered_offline", [(3600, True), (0, False)])
def test_remote_commands_online_and_queued_while_offline(broker: LocalBroker, tmp_path: Path, expiry: int,
                                                         delivered_offline: bool) -> None:
    device, pinned = f"cmd{expiry}", []
    tel = _tel(tmp_path, broker.url, device_id=device, session_expiry_s=expiry)
    tel.register_handler("pin_tier", lambda tier, backend=None: pinned.append(tier))
    tel.start()
    tel.wait_connected(5)
    time.sleep(0.3)  # the cmd subscription is acknowledged
    _send_command(broker.port, device, {"cmd": "pin_tier", "tier": "int8"})
    assert _wait(lambda: pinned == ["int8"]), pinned
    tel.close()  # the device goes offline; the operator sends a command meanwhile
    _send_command(broker.port, device, {"cmd": "pin_tier", "tier": "fp16"})
    tel = _tel(tmp_path, broker.url, device_id=device, session_expiry_s=expiry)
    tel.register_handler("pin_tier", lambda tier, backend=None: pinned.append(tier))
    tel.start()
    tel.wait_connected(5)
    if delivered_offline:
        assert _wait(lambda: pinned == ["int8", "fp16"]), pinned
    else:
        assert not _wait(lambda: len(pinned) > 1, timeout=1.0), pinned
    tel.close()
