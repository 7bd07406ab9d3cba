"""Remote command validation, the sink, the fleet model (de-dup, gaps) and the HTML report."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from sdk.events import EventBus
from sdk.fleet import FleetState, HistoryDB, load_history, write_report
from sdk.telemetry import Telemetry, TelemetrySettings, TelemetrySink
from sdk.telemetry.commands import CommandRejected, parse_command
from sdk.telemetry.simulate_profile import tiny_profile


def _tel(tmp_path: Path, bus: EventBus, profile: object = None) -> Telemetry:
    s = TelemetrySettings(spool=str(tmp_path / "s.db"), device_id="d1", fleet="f").finish()
    return Telemetry(s, kind="image", profile=profile, bus=bus)  # type: ignore[arg-type]


@pytest.mark.parametrize("payload,reason", [
    (b"rm -rf /", "not JSON"), (b"[1]", "JSON object"), (b'{"cmd": "exec", "code": "x"}', "unknown command"),
    (b'{"cmd": "pin_tier"}', "missing field"), (b'{"cmd": "pin_tier", "tier": "int4"}', "not a tier"),
    (b'{"cmd": "pin_tier", "tier": "int8", "shell": 1}', "unexpected"),
    (b'{"cmd": "set_thresholds", "psi_warn": "high"}', "must be a number"),
    (b'{"cmd": "status", "id": ' + b'"' + b"x" * 100 + b'"}', "64 characters"),
    (b"{" + b" " * 5000 + b"}", "over the"),
])
def test_invalid_commands_are_rejected(payload: bytes, reason: str) -> None:
    with pytest.raises(CommandRejected, match=reason):
        parse_command(payload)


def test_commands_call_handlers_and_report(tmp_path: Path) -> None:
    bus = EventBus()
    events = []
    bus.subscribe(events.append)
    tel = _tel(tmp_path, bus, tiny_profile())
    pinned = []
    assert not tel.handle_command(b'{"cmd": "pin_tier", "tier": "int8"}')["ok"]  # no handler yet
    tel.register_handler("pin_tier", lambda tier, backend=None: pinned.append((tier, backend)) or "pinned")
    assert tel.handle_command(b'{"cmd": "pin_tier", "tier": "pruned50-int8", "backend": "litert", "id": "c1"}')["ok"]
    assert pinned == [("pruned50-int8", "litert")]
    r = tel.handle_command(b'{"cmd": "set_thresholds", "psi_warn": 0.2, "psi_alert": 0.4}')
    assert r["ok"] and tel.drift.thresholds.psi_warn == 0.2  # type: ignore[union-attr]
    assert not tel.handle_command(b'{"cmd": "set_thresholds", "psi_warn": 0.5}')["ok"]  # warn >= alert
    assert tel.handle_command(b'{"cmd": "status"}')["result"]["device"] == "d1"
    assert not tel.handle_command(b'{"cmd": "reboot"}')["ok"]
    kinds = [e.kind for e in events]
    assert kinds.count("cmd.rejected") == 3 and kinds.count("cmd.result") == 3
    tel.close()


def test_sink_feeds_stats_and_publishes(tmp_path: Path) -> None:
    bus = EventBus()
    tel = _tel(tmp_path, bus)
    sink = TelemetrySink(tel, interval_s=1e-6, stats=lambda: {"dropped": 3})
    sink.open()
    img = np.full((32, 32, 3), 50, np.uint8)
    for i in range(5):
        sink.write(SimpleNamespace(item=SimpleNamespace(data=img, meta={}, seq=i), value=np.array([0.1, 0.9]),
                                   latency_ms=float(i), timings={}))
    bus.publish("tier.switch", tier="int8")
    sink.write(SimpleNamespace(item=SimpleNamespace(data=img, meta={}, seq=5), value=None, latency_ms=5.0))
    path = tel.settings.spool
    sink.close()
    msgs = [m["body"] for m in __import__("sdk.telemetry", fromlist=["read_messages"]).read_messages(path)]
    tele = [m for m in msgs if m["type"] == "telemetry"]
    assert len(tele) >= 5 and tele[-1]["drops"] == 3 and tele[-1]["tier"] == "int8"
    assert tel.frames == 6
    seqs = [m["seq"] for m in msgs]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def _msg(device: str, channel: str, seq: int, **body: object) -> tuple[str, bytes]:
    return f"ember/f/{device}/{channel}", json.dumps({"seq": seq, "device": device, **body}).encode()


def test_fleet_state_dedups_and_flags_gaps() -> None:
    st = FleetState("f")
    assert st.apply("ember/f/a/status", b'{"state": "online"}') == "ok"
    assert st.apply(*_msg("a", "telemetry", 1, fps=10, tier="fp32", latency_p95_ms=5,
                          device_state={"battery_percent": 80, "temperature_c": 40})) == "ok"
    assert st.apply(*_msg("a", "telemetry", 1, fps=10)) == "duplicate"
    assert st.apply(*_msg("a", "drift", 4, state="alert", features={"brightness": {"state": "alert"}})) == "ok"
    a = st.devices["a"]
    assert a.gaps == 2 and a.duplicates == 1 and a.drift == {"brightness": "alert"}
    assert st.apply(*_msg("a", "events", 2, kind="tier.switch", data={"tier": "int8"})) == "ok"  # late
    assert a.gaps == 1 and a.tier == "int8" and a.last_event == "tier.switch int8"
    assert st.apply(*_msg("a", "events", 2, kind="x")) == "duplicate"
    assert st.apply("ember/other/b/telemetry", b"{}") == "ignored"
    assert st.apply("ember/f/b/telemetry", b"not json") == "malformed"
    st.apply("ember/f/a/status", b'{"state": "offline"}')
    assert a.online is False and a.battery == 80 and a.p95_ms == 5
    from sdk.fleet.watch import render

    assert render(st).row_count == 2


def test_report_from_spool_and_recording(tmp_path: Path) -> None:
    bus = EventBus()
    tel = _tel(tmp_path, bus, tiny_profile()).start()
    rng = np.random.default_rng(0)
    for i in range(1200):
        shift = 0 if i < 600 else 60
        tel.observe(rng.normal(128 - shift, 25, (24, 32, 3)).clip(0, 255).astype(np.uint8), rng.dirichlet((4, 2, 1)))
        if i % 100 == 0:
            tel.publish_telemetry(fps=10.0, latency_p50_ms=5.0, latency_p95_ms=7.0)
            bus.publish("tier.switch", tier=["fp32", "int8"][i // 100 % 2])
    tel.close()
    out = write_report(tmp_path / "s.db", tmp_path / "r.html")
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 3 and "d1" in page
    db = HistoryDB(tmp_path / "rec.db")
    rows = load_history(tmp_path / "s.db")
    for r in rows:
        assert db.add(f"ember/f/{r['device']}/{r['channel']}", json.dumps(r["body"]).encode())
    assert not db.add(f"ember/f/{rows[0]['device']}/{rows[0]['channel']}", json.dumps(rows[0]["body"]).encode())
    db.close()
    page2 = write_report(tmp_path / "rec.db", tmp_path / "r2.html").read_text()
    assert page2.count("data:image/png;base64,") == 3
    from sdk.errors import TelemetryError

    with pytest.raises(TelemetryError, match="cannot write the report"):
        write_report(tmp_path / "rec.db", tmp_path / "no_such_folder" / "r.html")


def test_unreadable_recordings_are_clear_errors_and_not_left_open(tmp_path: Path, open_fds_to) -> None:
    from sdk.errors import TelemetryError

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite " * 200)
    with pytest.raises(TelemetryError, match="cannot open"):
        HistoryDB(junk)
    with pytest.raises(TelemetryError, match="not an Ember recording"):
        load_history(junk)
    assert open_fds_to(junk) == 0


def test_local_broker_that_fails_to_start_leaves_nothing_running(tmp_path: Path, open_fds_to) -> None:
    from sdk.errors import TelemetryError
    from sdk.fleet.broker import LocalBroker

    b = LocalBroker(extra="no_such_mosquitto_option 1\n", workdir=tmp_path / "b")
    with pytest.raises(TelemetryError, match="exited at start"):
        b.start()
    assert b.proc is None and open_fds_to(tmp_path / "b" / "mosquitto.log") == 0
    with LocalBroker(workdir=tmp_path / "ok") as ok:
        ok.restart()
        assert open_fds_to(tmp_path / "ok" / "mosquitto.log") == 1  # restart closed the first run's log
    assert open_fds_to(tmp_path / "ok" / "mosquitto.log") == 0


def test_fleet_subscriber_with_a_bad_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    from sdk.errors import TelemetryError
    from sdk.fleet.watch import FleetSubscriber

    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    s = TelemetrySettings(broker="mqtts://127.0.0.1:8883", ca_certs=str(ca), device_id="w").finish()
    with pytest.raises(TelemetryError, match="TLS setup failed .*telemetry.ca_certs"):
        FleetSubscriber(s, lambda topic, payload: None)
