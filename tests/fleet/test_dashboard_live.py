"""The dashboard's snapshot, fed through the one telemetry path (``FleetState.apply``): per-device
fields, the energy estimate, drift alerts, the event log and fields the fleet state may not have."""

from __future__ import annotations

import json

from sdk.fleet.dashboard.live import LiveFleet
from sdk.fleet.report import history_series
from sdk.optimize.energy import energy_mj
from sdk.telemetry.settings import TelemetrySettings


def _feed(live: LiveFleet, device: str, channel: str, seq: int, **body: object) -> None:
    live.on_message(f"ember/f/{device}/{channel}", json.dumps({"seq": seq, "device": device, **body}).encode())


def test_snapshot_of_a_fleet() -> None:
    live = LiveFleet(TelemetrySettings(fleet="f").finish())
    live.on_message("ember/f/a/status", b'{"state": "online"}')
    _feed(live, "a", "telemetry", 1, fps=9.5, tier="int8", latency_p50_ms=4.0, latency_p95_ms=6.0,
          device_class="raspberry-pi-4", device_state={"battery_percent": 70, "temperature_c": 51, "cpu_percent": 33})
    _feed(live, "b", "telemetry", 1, fps=5, latency_p50_ms=2.0, energy_mj=1.25)
    _feed(live, "b", "drift", 2, state="alert", features={"brightness": {"state": "alert", "psi": 0.9},
                                                          "contrast": {"state": "ok", "psi": 0.01}})
    _feed(live, "a", "events", 2, kind="tier.switch", data={"tier": "fp32", "reason": "rollback"})
    _feed(live, "a", "events", 3, kind="cmd.rejected", data={"level": "error", "reason": "unknown command"})
    _feed(live, "a", "events", 3, kind="cmd.rejected", data={})  # a duplicate: not logged twice
    live.on_message("ember/other/c/telemetry", b'{"seq": 1}')  # another fleet: ignored
    snap = live.snapshot()
    a, b = snap["devices"]
    assert (a["device"], a["online"], a["tier"], a["fps"], a["p50_ms"], a["p95_ms"]) == ("a", True, "fp32", 9.5, 4.0, 6.0)
    assert (a["battery"], a["temperature"], a["cpu"]) == (70, 51, 33)
    assert a["energy_mj"] == energy_mj(4.0, "raspberry-pi-4")[0] and "raspberry-pi-4" in a["energy_source"]
    assert b["energy_mj"] == 1.25 and b["energy_source"] == "device"  # a device's own figure wins
    assert a["version"] is None and snap["deployments"] == {}  # nothing about versions yet: empty, no error
    assert snap["alerts"] == [{"device": "b", "features": ["brightness"]}]
    assert b["drift"] == {"brightness": "alert", "contrast": "ok"}
    assert [e["kind"] for e in snap["events"]] == ["cmd.rejected", "tier.switch", "status.online"]  # newest first
    assert snap["events"][0]["level"] == "error" and snap["events"][1]["data"]["reason"] == "rollback"
    assert snap["changes"] == 6 and json.dumps(snap)  # plain JSON


def test_history_series_for_the_plots() -> None:
    rows = [{"channel": "drift", "ts": 10.0, "body": {"features": {"brightness": {"psi": 0.5}, "x": {"psi": None}}}},
            {"channel": "telemetry", "ts": 11.0, "body": {"latency_p50_ms": 3, "latency_p95_ms": 5, "tier": "int8"}},
            {"channel": "telemetry", "ts": 12.0, "body": {"fps": 3}},
            {"channel": "events", "ts": 13.0, "body": {"kind": "tier.switch", "data": {"to": "fp32"}}}]
    s = history_series(rows, 10.0)
    assert s == {"psi": {"brightness": [[0.0, 0.5]]}, "latency": [[1.0, 3, 5]], "tier": [[1.0, "int8"], [3.0, "fp32"]]}
