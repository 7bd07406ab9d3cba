"""The device agent without a broker: commands go straight to ``Telemetry.handle_command`` (as the
MQTT link would pass them), bundles come from a local HTTP server, models run on ONNX Runtime."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sdk.errors import RolloutError
from sdk.events import Event, EventBus
from sdk.rollout.agent import DeviceAgent
from sdk.rollout.bundle import keygen, pack
from sdk.rollout.settings import RolloutSettings
from sdk.rollout.simfleet import N_IN, serve_folder, sim_model
from sdk.rollout.versions import VersionStore
from sdk.telemetry.core import Telemetry
from sdk.telemetry.settings import TelemetrySettings


class Device:
    def __init__(self, tmp: Path, url: str) -> None:
        self.tmp, self.url = tmp, url
        keygen(tmp / "k.key", tmp / "k.pub")
        VersionStore(tmp / "models", emit=lambda *a, **k: None).install(sim_model(tmp / "src" / "1.0.0", "1.0.0"))
        self.bus = EventBus()
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)
        s = TelemetrySettings(spool=str(tmp / "spool.db"), device_id="d1", fleet="f").finish()
        self.tel = Telemetry(s, kind="image", bus=self.bus, device_state=dict)
        self.agent = DeviceAgent(self.tel, tmp / "models", [tmp / "k.pub"], workdir=tmp / "work",
                                 settings=RolloutSettings(max_bundle_bytes=1 << 20, download_timeout_s=5)).start()
        self.x = np.random.default_rng(0).normal(0, 1, (1, N_IN)).astype(np.float32)

    def bundle(self, version: str, **model: Any) -> Path:
        return pack(sim_model(self.tmp / "src" / version, version, **model), self.tmp / "k.key",
                    self.tmp / "www" / f"m-{version}.bundle")

    def deploy(self, path: Path, dep: str, **over: Any) -> dict[str, Any]:
        data = path.read_bytes() if path.exists() else b"x"
        cmd = {"cmd": "deploy", "deployment": dep, "version": "1.1.0", "size": len(data),
               "sha256": hashlib.sha256(data).hexdigest(), "url": f"{self.url}/{path.name}", **over}
        return self.tel.handle_command(json.dumps(cmd).encode())

    def wait(self, kind: str, dep: str, frames: bool = False, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hit = [e.data for e in self.events if e.kind == kind and e.data.get("deployment") == dep]
            if hit:
                return hit[-1]
            if frames:
                self.agent(self.x)  # live inputs: the shadow test needs frames
            else:
                time.sleep(0.02)
        raise AssertionError(f"no {kind} for {dep}: {[(e.kind, e.data) for e in self.events][-8:]}")


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[Device]:
    (tmp_path / "www").mkdir()
    with serve_folder(tmp_path / "www") as url:
        d = Device(tmp_path, url)
        yield d
        d.agent.close()
        d.tel.close()


def test_promotion_swaps_the_served_model_without_restart(dev: Device) -> None:
    before = dev.agent(dev.x)[0]
    b = dev.bundle("1.1.0", swap=True)  # classes permuted: a visible change of the outputs
    assert dev.deploy(b, "d1", shadow={"frames": 10, "min_agreement": 0.0, "fraction": 1.0})["ok"]
    promoted = dev.wait("rollout.promoted", "d1", frames=True)
    assert promoted["version"] == "1.1.0" and dev.agent.version == "1.1.0"
    after = dev.agent(dev.x)[0]
    assert np.allclose(after[0], before[0][[1, 2, 3, 0]], atol=1e-6)  # the new version serves now
    final = [e.data for e in dev.events if e.kind == "rollout.shadow" and e.data.get("final")]
    assert len(final) == 1 and final[0]["decision"] == "promote" and final[0]["frames"] >= 10
    assert final[0]["candidate_p95_ms"] > 0 and final[0]["deployment"] == "d1"
    kinds = [e.kind for e in dev.events if e.data.get("deployment") == "d1"]
    assert kinds[:3] == ["rollout.received", "rollout.downloaded", "rollout.staged"]
    assert dev.agent.telemetry_extra()["model_version"] == "1.1.0"


def test_disagreeing_candidate_is_discarded(dev: Device) -> None:
    b = dev.bundle("1.1.0", swap=True)
    dev.deploy(b, "d2", shadow={"frames": 20, "min_agreement": 0.95, "fraction": 1.0})
    dev.wait("rollout.discarded", "d2", frames=True)
    final = [e.data for e in dev.events if e.kind == "rollout.shadow" and e.data.get("final")][-1]
    assert final["decision"] == "reject" and final["agreement"] < 0.95 and "agreement" in final["reasons"][0]
    assert dev.agent.version == "1.0.0" and dev.agent.versions.candidate_version() is None


@pytest.mark.parametrize("case,kind,words", [
    ("too_large", "rollout.rejected", "over this device's limit"),
    ("missing", "rollout.failed", "not_found"),
    ("wrong_sha", "rollout.failed", "checksum"),
    ("unsigned", "rollout.rejected", "unsigned"),
])
def test_bad_deliveries_leave_the_active_version_serving(dev: Device, case: str, kind: str, words: str) -> None:
    b = dev.bundle("1.1.0")
    over: dict[str, Any] = {}
    if case == "too_large":
        over = {"size": 2 << 20}
    elif case == "missing":
        b = b.with_name("nothing-here.bundle")
    elif case == "wrong_sha":
        over = {"sha256": "0" * 64}
    else:
        import gzip
        import io
        import tarfile

        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            tar.add(dev.tmp / "src" / "1.1.0", arcname=".")
        b.write_bytes(gzip.compress(raw.getvalue()))  # a plain archive, no signature
    dev.deploy(b, f"bad-{case.replace('_', '-')}", **over)
    got = dev.wait(kind, f"bad-{case.replace('_', '-')}")
    assert words in json.dumps(got)
    assert dev.agent.version == "1.0.0" and dev.agent.versions.candidate_version() is None
    assert dev.agent(dev.x)[0].shape == (1, 4)


def test_garbage_chunks_and_commands_are_refused(dev: Device) -> None:
    dev.agent._on_chunk("d9", b"\x00not json")
    assert "bad bundle chunk" in dev.wait("rollout.failed", "d9")["error"]
    dev.agent._on_chunk("d8", b"{" + b" " * (2 << 20) + b"}")
    assert "too_big" in dev.wait("rollout.failed", "d8")["error"]
    r = dev.tel.handle_command(b'{"cmd": "deploy", "deployment": "d9", "version": "1.1.0", "size": 5, '
                               b'"sha256": "00", "url": "mqtt-chunks"}')
    assert not r["ok"] and "sha256" in r["error"]
    r = dev.tel.handle_command(b'{"cmd": "rollback"}')  # nothing to roll back to
    assert r["ok"] and "no previous version" in dev.wait("rollout.failed", None)["error"]


def test_agent_needs_an_installed_version(tmp_path: Path) -> None:
    s = TelemetrySettings(spool=str(tmp_path / "s.db"), device_id="d", fleet="f").finish()
    tel = Telemetry(s, kind="image", bus=EventBus(), device_state=dict)
    with pytest.raises(RolloutError, match="no active model"):
        DeviceAgent(tel, tmp_path / "empty", []).start()
    tel.close()


def test_demo_folder_has_signed_releases(tmp_path: Path) -> None:
    from sdk.rollout.bundle import verify
    from sdk.rollout.simfleet import prepare_demo

    demo = prepare_demo(tmp_path / "demo")
    for version in ("1.1.0", "1.2.0", "1.3.0"):
        assert verify(demo[version], [demo["public_key"]], active_version="1.0.0").version == version
    stamp = demo["1.1.0"].stat().st_mtime_ns
    assert prepare_demo(tmp_path / "demo")["1.1.0"].stat().st_mtime_ns == stamp  # kept, not rebuilt


def test_agent_from_the_rollout_config_section(tmp_path: Path) -> None:
    from sdk.config import load_config
    from sdk.errors import ConfigError
    from sdk.rollout.settings import RolloutSettings

    VersionStore(tmp_path / "models", emit=lambda *a, **k: None).install(sim_model(tmp_path / "v1", "1.0.0"))
    keygen(tmp_path / "k.key", tmp_path / "k.pub")
    toml = tmp_path / "ember.toml"
    toml.write_text(f'[rollout]\nstore = "{tmp_path / "models"}"\ntrusted_keys = ["{tmp_path / "k.pub"}"]\n'
                    'cpu_budget = 0.1\n')
    cfg = load_config(toml)
    s = TelemetrySettings(spool=str(tmp_path / "s.db"), device_id="d", fleet="f").finish()
    tel = Telemetry(s, kind="image", bus=EventBus(), device_state=dict)
    agent = DeviceAgent.from_config(tel, cfg).start()
    assert agent.s.cpu_budget == 0.1 and agent.version == "1.0.0" and agent.keys == [str(tmp_path / "k.pub")]
    agent.close()
    tel.close()
    with pytest.raises(ConfigError, match="rollout.store"):
        DeviceAgent.from_config(tel, {"rollout": {}})
    with pytest.raises(ConfigError, match="trusted_keys"):
        DeviceAgent.from_config(tel, {"rollout": {"store": "x"}})
    with pytest.raises(ConfigError, match="unknown key rollout.keys"):
        RolloutSettings.from_config({"rollout": {"keys": "sent over mqtt"}})
    with pytest.raises(ConfigError, match="cpu_budget"):
        RolloutSettings(cpu_budget=2.0)


@pytest.mark.parametrize("frames", [0, 10])
def test_candidate_that_does_not_load_is_discarded(dev: Device, frames: int) -> None:
    from sdk.models.manifest import Manifest

    folder = sim_model(dev.tmp / "src" / "broken", "1.1.0")
    (folder / "model.fp32.onnx").write_bytes(b"\x08\x07 not an onnx graph" * 10)
    m = Manifest.load(folder)
    m.variants = []
    m.add_variant("fp32", "model.fp32.onnx", "onnxruntime", folder=folder)  # signed, checksums right
    m.save(folder)
    b = pack(folder, dev.tmp / "k.key", dev.tmp / "www" / "broken.bundle")
    dev.deploy(b, f"broken{frames}", shadow={"frames": frames})
    failed = dev.wait("rollout.failed", f"broken{frames}", frames=True)
    assert "model" in failed["error"].lower()
    assert dev.wait("rollout.discarded", f"broken{frames}")["version"] == "1.1.0"
    assert dev.agent.version == "1.0.0" and dev.agent.versions.candidate_version() is None
    assert dev.agent(dev.x)[0].shape == (1, 4)


def test_agent_starts_before_the_telemetry_link(tmp_path: Path) -> None:
    from sdk.errors import EmberError

    VersionStore(tmp_path / "models", emit=lambda *a, **k: None).install(sim_model(tmp_path / "v1", "1.0.0"))
    s = TelemetrySettings(broker="mqtt://127.0.0.1:1", spool=str(tmp_path / "s.db"), device_id="d", fleet="f")
    tel = Telemetry(s.finish(), kind="image", bus=EventBus(), device_state=dict).start()
    try:
        with pytest.raises(EmberError, match="before telemetry.start"):
            DeviceAgent(tel, tmp_path / "models", []).start()
    finally:
        tel.close(flush_timeout=0)
