"""Rollout commands on the validated channel, canary groups, regression checks and the fleet view of
deployments (no broker needed here; the simulated fleet is in test_canary_fleet.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sdk.errors import ConfigError
from sdk.fleet.state import FleetState
from sdk.rollout.canary import CanaryWatch, Limits, check, parse_canary, pick_canaries
from sdk.telemetry.commands import CommandRejected, parse_command

SHA = "ab" * 32


def _deploy(**over: object) -> bytes:
    cmd = {"cmd": "deploy", "deployment": "d-1", "version": "1.2.0", "sha256": SHA, "size": 1000,
           "url": "https://models.example.com/kws-1.2.0.bundle", "shadow": {"min_agreement": 0.95, "frames": 100},
           "canary": True}
    cmd.update(over)
    return json.dumps({k: v for k, v in cmd.items() if v is not None}).encode()


def test_deploy_command_is_validated_data() -> None:
    c = parse_command(_deploy())
    assert c.name == "deploy" and c.args["version"] == "1.2.0" and c.args["shadow"]["frames"] == 100
    assert parse_command(_deploy(url="mqtt-chunks")).args["url"] == "mqtt-chunks"
    assert parse_command(b'{"cmd": "rollback"}').args == {}
    assert parse_command(b'{"cmd": "rollback", "to": "1.0.0", "deployment": "d-1"}').args["to"] == "1.0.0"
    assert parse_command(b'{"cmd": "promote", "deployment": "d-1"}').name == "promote"


@pytest.mark.parametrize("over,reason", [
    ({"url": "file:///etc/passwd"}, "http"), ({"url": "ftp://x/y"}, "http"), ({"url": None}, "missing field"),
    ({"sha256": "xyz"}, "64 lower-case hex"), ({"size": 0}, "integer number of bytes"), ({"size": 2 << 30}, "1.."),
    ({"size": True}, "integer"), ({"version": "../../x"}, "letters, digits"), ({"deployment": "a/b"}, "letters"),
    ({"shadow": {"exec": 1}}, "unknown criterion"), ({"shadow": {"min_agreement": 2}}, r"\[0, 1\]"),
    ({"shadow": []}, "must be an object"), ({"canary": "yes"}, "true or false"), ({"key": "PEM..."}, "unexpected"),
])
def test_bad_deploy_commands_are_rejected(over: dict[str, object], reason: str) -> None:
    with pytest.raises(CommandRejected, match=reason):
        parse_command(_deploy(**over))


def test_promote_and_discard_need_the_deployment() -> None:
    for name in ("promote", "discard"):
        with pytest.raises(CommandRejected, match="missing field 'deployment'"):
            parse_command(json.dumps({"cmd": name}).encode())


@pytest.mark.parametrize("spec,n", [("10%", 1), ("50%", 5), ("100%", 9), ("3", 3), (2, 2), ("25%", 3)])
def test_canary_group_size(spec: str, n: int) -> None:
    devices = [f"d{i}" for i in range(10)]
    group = pick_canaries(devices, spec)
    assert len(group) == n and set(group) <= set(devices)
    assert pick_canaries(devices, spec, seed=1) == pick_canaries(devices, spec, seed=1)


def test_canary_spec_errors() -> None:
    for bad in ("0%", "150%", "abc", "0", "1.5"):
        with pytest.raises(ConfigError, match="--canary"):
            parse_canary(bad)
    with pytest.raises(ConfigError, match="no devices"):
        pick_canaries([], "10%")
    assert pick_canaries(["only"], "10%") == ["only"]


def _tele(watch: CanaryWatch, dev: str, ts: float, version: str, p95: float, errors: int = 0,
          rate: float = 0.5, drift: str = "ok") -> None:
    body = {"ts": 1e9, "model_version": version, "latency_p95_ms": p95, "errors": errors,
            "metrics": {"detection_rate": rate}, "drift_state": {"brightness": drift}}
    watch.feed(f"ember/f/{dev}/telemetry", json.dumps(body).encode(), now=ts)  # arrival time counts


def test_regressions_against_the_baseline() -> None:
    w = CanaryWatch()
    for t in range(5):
        _tele(w, "a", t, "1.0", 2.0, errors=3)
        _tele(w, "b", t, "1.0", 2.0)
    for t in range(10, 15):
        _tele(w, "a", t, "1.1", 2.2, errors=3)        # no new errors, p95 +10 %
        _tele(w, "b", t, "1.1", 5.0, errors=2, rate=0.2, drift="alert")
        _tele(w, "a", t, "1.0", 99.0)                  # other versions never count
    base = w.summary(["a", "b"], since=0, version="1.0")
    soak = w.summary(["a", "b"], since=10, version="1.1")
    assert soak["a"]["n"] == 5 and soak["a"]["errors"] == 0 and soak["b"]["errors"] == 2
    limits = Limits(max_p95_ratio=1.5, min_metric_ratio={"detection_rate": 0.8})
    problems = check(soak, base, limits)
    assert not [p for p in problems if p.startswith("a:")]
    text = " | ".join(problems)
    assert "b: 2 inference errors" in text and "2.50x the baseline" in text and "drift reached alert" in text
    assert "detection_rate 0.2 is 0.40x" in text
    assert check(soak, base, Limits(max_errors=5, max_p95_ratio=3, max_drift="off")) == []
    assert check(soak, base, Limits(max_p95_ratio=3, max_errors=5, max_drift="off", min_samples=6)) == []
    silent = check(soak, base, Limits(max_p95_ratio=3, max_errors=5, max_drift="off", min_samples=6), final=True)
    assert len(silent) == 2 and "a: 5 telemetry samples on the new version" in silent[0]


def test_limits_are_checked() -> None:
    with pytest.raises(ConfigError, match="max_drift"):
        Limits(max_drift="high")
    with pytest.raises(ConfigError, match="max_p95_ratio"):
        Limits(max_p95_ratio=0)


def test_fleet_state_follows_versions_and_deployments() -> None:
    st = FleetState("f")

    def ev(dev: str, seq: int, kind: str, **data: object) -> None:
        st.apply(f"ember/f/{dev}/events", json.dumps({"seq": seq, "kind": kind, "data": data}).encode())

    st.apply("ember/f/_deploy/events", json.dumps({"kind": "deploy.canary", "ts": 1.0, "data": {
        "deployment": "d-1", "phase": "canary", "version": "1.1", "canaries": ["a"], "message": "go"}}).encode())
    ev("a", 1, "rollout.staged", deployment="d-1", version="1.1", active="1.0", candidate="1.1")
    assert st.devices["a"].candidate == "1.1" and st.devices["a"].version == "1.0"
    ev("a", 2, "rollout.shadow", deployment="d-1", version="1.1", final=True, decision="promote", agreement=0.99,
       candidate_p95_ms=3.0, criteria={"min_frames": 100})
    ev("a", 3, "rollout.promoted", deployment="d-1", version="1.1", active="1.1", candidate=None)
    assert st.devices["a"].version == "1.1" and st.devices["a"].candidate is None
    d = st.deployments["d-1"]
    assert d.phase == "canary" and d.canaries == ["a"] and d.devices == {"a": "promoted"}
    assert d.details["a"] == {"decision": "promote", "agreement": 0.99, "candidate_p95_ms": 3.0}
    st.apply("ember/f/_deploy/events", json.dumps({"kind": "deploy.rolled_back", "data": {
        "deployment": "d-1", "phase": "rolled_back", "message": "p95"}}).encode())
    assert d.phase == "rolled_back" and [s["phase"] for s in d.steps] == ["canary", "rolled_back"]
    assert st.apply("ember/f/_deploy/events", b"not json") == "malformed"
    st.apply("ember/f/b/telemetry", json.dumps({"seq": 1, "model_version": "1.0"}).encode())
    assert st.devices["b"].version == "1.0" and "_deploy" not in st.devices
    from sdk.fleet.watch import render

    table = render(st)
    assert "d-1 (1.1): rolled_back, 1 promoted" in str(table.caption) and table.columns[2].header == "model"
    assert list(table.columns[2].cells) == ["1.1", "1.0"]


def test_deploy_help_explains(capsys: pytest.CaptureFixture[str]) -> None:
    from sdk.cli import main

    with pytest.raises(SystemExit):
        main(["fleet", "deploy", "--help"])
    out = capsys.readouterr().out
    for words in ("canary group", "shadow-tests", "--soak", "--max-p95-ratio", "rolls the canaries back", "--url"):
        assert words in out


def test_controller_errors_are_typed(tmp_path: Path, need: Any) -> None:
    from sdk.errors import TelemetryError
    from sdk.fleet.broker import LocalBroker
    from sdk.rollout.deploy import DeploySpec, FleetController
    from sdk.telemetry.settings import TelemetrySettings

    need("mosquitto")
    broker = LocalBroker(workdir=tmp_path / "mosq").start()
    try:
        with FleetController(TelemetrySettings(broker=broker.url, fleet="f", device_id="c").finish(),
                             discover_s=0) as fc:
            junk = tmp_path / "junk.bundle"
            junk.write_bytes(b"not a bundle")
            with pytest.raises(ConfigError, match="cannot read the bundle's version"):
                fc.deploy(DeploySpec(junk))
            with pytest.raises(ConfigError, match="not found"):
                fc.deploy(DeploySpec(tmp_path / "missing.bundle"))
            with pytest.raises(ConfigError, match="no devices"):
                fc.deploy(DeploySpec(junk, version="1.0.0", baseline_s=0))
            broker.kill()
            with pytest.raises(TelemetryError, match="cannot send|did not acknowledge"):
                fc.send("d1", {"cmd": "status"})
    finally:
        broker.stop()


def test_deploy_flags_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sdk.cli import main

    for flag, value, words in (("--min-metric", "detection_rate", "use NAME=RATIO"),
                               ("--max-metric", "=2", "NAME must be given"), ("--canary", "0%", "give a share")):
        args = ["fleet", "deploy", str(tmp_path / "x.bundle"), "--broker", "mqtt://127.0.0.1:1", flag, value]
        assert main(args) == 2
        assert words in capsys.readouterr().err
