"""Canary rollout and rollback in a simulated fleet: 4 devices, each a real MQTT telemetry link to a
real mosquitto, a real VersionStore on disk and a real ONNX Runtime model, driven by the fleet
controller. The tests run in order on one fleet (versions 1.0.0 → 1.1.0 → ...)."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sdk.cli import main
from sdk.fleet.broker import LocalBroker
from sdk.rollout.bundle import pack
from sdk.rollout.canary import Limits
from sdk.rollout.deploy import DeploySpec, FleetController
from sdk.rollout.keys import keygen
from sdk.rollout.simfleet import SimFleet, serve_folder, sim_model
from sdk.telemetry.settings import TelemetrySettings

SHADOW = {"frames": 20, "fraction": 1.0, "min_agreement": 0.95}
FAST = {"baseline_s": 0.5, "soak_s": 0.8, "step_timeout_s": 20.0}


class Env:
    def __init__(self, root: Path, fleet: SimFleet, fc: FleetController, url: str, broker_url: str) -> None:
        self.root, self.fleet, self.fc, self.url, self.broker_url = root, fleet, fc, url, broker_url
        self.key = root / "keys" / "signing.key"
        self.received: list[dict[str, Any]] = []
        fc.listeners.append(self._on_message)

    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic.endswith("/events"):
            self.received.append({"device": topic.split("/")[2], **json.loads(payload)})

    def bundle(self, version: str, **model: Any) -> Path:
        folder = sim_model(self.root / "src" / version, version, **model)
        return pack(folder, self.key, self.root / "www" / f"sim-{version}.bundle")

    def deploy(self, bundle: Path, **kw: Any) -> dict[str, Any]:
        spec = DeploySpec(bundle, **{"canary": "25%", "shadow": dict(SHADOW), **FAST, **kw})
        return self.fc.deploy(spec)

    def device(self, name: str) -> Any:
        return next(d for d in self.fleet.devices if d.name == name)

    def events(self, device: str, kind: str) -> list[dict[str, Any]]:
        return [e for e in list(self.received) if e["device"] == device and e["kind"] == kind]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, need: Any) -> Iterator[Env]:
    need("mosquitto")
    root = tmp_path_factory.mktemp("rollout")
    keygen(root / "keys" / "signing.key", root / "keys" / "signing.pub")
    (root / "www").mkdir()
    v1 = sim_model(root / "src" / "1.0.0", "1.0.0")
    broker = LocalBroker(persistence=True, extra="autosave_on_changes true\n", workdir=root / "mosq").start()
    try:
        with SimFleet(broker.url, 4, root / "fleet", v1, [root / "keys" / "signing.pub"], fps=60, report_s=0.1) as fl, \
                serve_folder(root / "www") as url:
            s = TelemetrySettings(broker=broker.url, fleet="sim", device_id="controller").finish()
            with FleetController(s, discover_s=0.5) as fc:
                yield Env(root, fl, fc, url, broker.url)
    finally:
        broker.stop()


def _wait(pred: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return bool(pred())


def test_good_candidate_is_promoted_fleet_wide(env: Env) -> None:
    b = env.bundle("1.1.0")  # the same weights: full agreement, same speed
    report = env.deploy(b, url=f"{env.url}/{b.name}", limits=Limits(max_p95_ratio=5.0))
    assert report["phase"] == "done", (report.get("reason"), report.get("canary_details"))
    assert len(report["canaries"]) == 1 and len(report["rest"]) == 3
    assert env.fleet.versions() == dict.fromkeys(env.fleet.versions(), "1.1.0")
    dep = env.fc.state.deployments[report["deployment"]]
    assert _wait(lambda: dep.phase == "done") and set(dep.devices.values()) == {"promoted"}
    assert _wait(lambda: all(v.version == "1.1.0" for v in env.fc.state.devices.values() if v.device.startswith("sim")))
    canary = report["canaries"][0]
    shadow = [e["data"] for e in env.events(canary, "rollout.shadow") if e["data"].get("final")]
    assert shadow and shadow[-1]["passed"] and shadow[-1]["agreement"] == 1.0


def test_disagreeing_candidate_is_stopped_at_the_canary(env: Env) -> None:
    b = env.bundle("1.2.0", swap=True)  # classes permuted: the shadow test disagrees
    report = env.deploy(b)  # MQTT chunks
    assert report["phase"] == "rolled_back" and "did not promote" in report["reason"]
    canary = report["canaries"][0]
    assert report["canary_steps"][canary] == "discarded"
    assert env.fleet.versions() == dict.fromkeys(env.fleet.versions(), "1.1.0")
    steps = env.fc.steps(report["deployment"])
    assert set(steps) == {canary}  # the rest never received it
    final = [e["data"] for e in env.events(canary, "rollout.shadow") if e["data"].get("final")][-1]
    assert not final["passed"] and final["agreement"] < 0.95


def test_slow_candidate_is_rolled_back_after_promotion(env: Env) -> None:
    b = env.bundle("1.3.0", slow=600)  # same outputs, far slower: passes agreement, fails the soak
    report = env.deploy(b, limits=Limits(max_p95_ratio=3.0))
    assert report["phase"] == "rolled_back" and "latency p95" in report["reason"], report
    canary = report["canaries"][0]
    assert report["canary_steps"][canary] == "promoted" and report["rolled_back"] == [canary]
    assert env.fleet.versions() == dict.fromkeys(env.fleet.versions(), "1.1.0")
    assert _wait(lambda: env.fc.state.deployments[report["deployment"]].phase == "rolled_back")


def test_manual_rollback(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fleet", "rollback", "--broker", env.broker_url, "--fleet", "sim", "--devices", "sim001",
                 "--to", "1.0.0", "--timeout", "10"])
    out = capsys.readouterr().out
    assert code == 0 and "manual rollback of 1 devices to 1.0.0" in out
    assert json.loads(out.strip().splitlines()[-1])["steps"] == {"sim001": "rolled_back"}
    assert env.device("sim001").version == "1.0.0" and env.device("sim002").version == "1.1.0"
    frames = env.device("sim001").frames
    assert _wait(lambda: env.device("sim001").frames > frames + 10)  # still serving, no restart
    bad = env.fc.rollback(["sim002"], to="0.9.0", timeout=5)  # not the kept previous version
    assert bad["steps"]["sim002"] == "failed" and env.device("sim002").version == "1.1.0"


def test_offline_device_gets_the_deployment_when_it_returns(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    off = env.device("sim003")
    off.stop()
    assert _wait(lambda: env.fc.state.devices["sim003"].online is False)
    b = env.bundle("1.4.0")
    code = main(["fleet", "deploy", str(b), "--broker", env.broker_url, "--fleet", "sim", "--canary", "25%",
                 "--baseline", "0.5", "--soak", "0.8", "--timeout", "20", "--shadow-frames", "20",
                 "--shadow-fraction", "1", "--max-p95-ratio", "5"])
    out = capsys.readouterr().out
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and "widening: sending to 3 more devices" in out and "1 offline or pending" in out
    assert report["phase"] == "done" and report["pending"] == ["sim003"]
    assert "sim003" not in report["canaries"]
    off.start()
    assert _wait(lambda: off.version == "1.4.0", 15), env.fc.steps(report["deployment"])
    assert _wait(lambda: env.fc.steps(report["deployment"]).get("sim003") == "promoted")


def test_tampered_and_unsigned_bundles_are_refused(env: Env) -> None:
    dev = env.device("sim000")
    good = env.bundle("1.5.0")
    tampered = env.root / "www" / "tampered.bundle"
    data = bytearray(good.read_bytes())
    data[-20] ^= 0xFF
    tampered.write_bytes(bytes(data))
    keygen(env.root / "other" / "k.key", env.root / "other" / "k.pub")
    foreign = pack(env.root / "src" / "1.5.0", env.root / "other" / "k.key", env.root / "www" / "foreign.bundle")
    for path, reason in ((tampered, "tampered"), (foreign, "untrusted_key")):
        frames = dev.frames
        report = env.deploy(path, devices=["sim000"], canary="1", url=f"{env.url}/{path.name}")
        assert report["phase"] == "rolled_back" and report["canary_steps"]["sim000"] == "rejected"
        rejected = [e["data"] for e in env.events("sim000", "rollout.rejected")
                    if e["data"].get("deployment") == report["deployment"]]
        assert rejected and rejected[-1]["reason"] == reason
        assert dev.version == "1.4.0" and _wait(lambda f=frames: dev.frames > f + 10)
    shutil.rmtree(env.root / "other")


def test_promote_and_rollback_commands_cut_a_shadow_test_short(env: Env) -> None:
    dev = env.device("sim002")
    for version, then in (("1.6.0", "promote"), ("1.7.0", "rollback")):
        b = env.bundle(version)
        dep = f"manual-{version}"
        env.fc.send_chunks(["sim002"], dep, b.read_bytes(), 64 << 10)
        env.fc.send("sim002", {"cmd": "deploy", "deployment": dep, "version": version, "size": b.stat().st_size,
                               "sha256": hashlib.sha256(b.read_bytes()).hexdigest(), "url": "mqtt-chunks",
                               "shadow": {"frames": 10**6, "timeout_s": 600}})
        assert _wait(lambda d=dep: env.fc.steps(d).get("sim002") == "shadow")  # a long test is running
        env.fc.send("sim002", {"cmd": then, "deployment": dep})
        final = "promoted" if then == "promote" else "rolled_back"
        assert _wait(lambda d=dep, f=final: env.fc.steps(d).get("sim002") == f), env.fc.steps(dep)
    assert dev.version == "1.4.0" and dev.agent is not None and dev.agent.versions.candidate_version() is None
