"""The model manager with real ONNX Runtime sessions: hot swap, quarantine, fallback, pinning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sdk.errors import ModelError
from sdk.events import EventBus
from sdk.models.manager import ModelManager
from sdk.models.manifest import Manifest
from sdk.runtime.backends import load_backend
from sdk.testing import FakeClock, ScriptedDevice, drain, windows


@pytest.fixture
def bus_events():
    bus, events = EventBus(), []
    bus.subscribe(events.append)
    return bus, events


def _refs(folder: Path, inputs, tier: str = "fp32") -> list[np.ndarray]:
    with load_backend(folder / f"model.{tier}.onnx") as m:
        return [m.run(x)[0] for x in inputs]


def _manager(folder: Path, bus, **kw) -> ModelManager:
    kw.setdefault("device", ScriptedDevice(FakeClock()))
    return ModelManager(folder, bus=bus, backends=["onnxruntime"], **kw)


def test_many_hot_swaps_lose_or_duplicate_no_frame(model_folder: Path, inputs, bus_events) -> None:
    bus, events = bus_events
    refs = {t: _refs(model_folder, inputs, t) for t in ("fp32", "fp16", "int8")}
    mgr = _manager(model_folder, bus, decide_every_s=0.0, background=True)
    outputs, frames = [], []
    for tier in ["int8", "fp16", "fp32"] * 4:
        mgr.pin(tier)
        after = 0
        while after < 5:  # frames keep flowing while the pinned variant loads in the background
            x = inputs[len(frames) % len(inputs)]
            frames.append(x)
            outputs.append(mgr(x))
            after += mgr.tier == tier
            assert len(frames) < 100_000
    mgr._loader.wait()
    mgr.close()
    assert len(outputs) == len(frames) == mgr.frames
    served = set()
    for i, (y,) in enumerate(outputs):
        # the output is exactly what some variant gives for this very frame (not a neighbour's, not stale)
        match = [t for t, r in refs.items() if np.allclose(y, r[i % len(inputs)], rtol=0, atol=1e-6)]
        assert match, f"frame {i}: output matches no variant's result for this frame"
        served.add(match[0])
    assert served == {"fp32", "fp16", "int8"}
    switches = [e.data for e in events if e.kind == "tier.switch" and e.data["reason"] != "initial"]
    assert len(switches) == 12 == mgr.switches
    assert all(s["from"] != s["to"] and s["load_ms"] > 0 and s["switch_ms"] > 0 for s in switches)


def test_truncated_variant_is_quarantined_and_next_tier_serves(fresh_folder: Path, inputs, bus_events) -> None:
    bus, events = bus_events
    f = fresh_folder / "model.fp32.onnx"
    f.write_bytes(f.read_bytes()[:500])  # truncated, and the manifest hash updated to match: only loading finds it
    m = Manifest.load(fresh_folder)
    m.add_variant("fp32", f.name)
    m.save()
    mgr = _manager(fresh_folder, bus, measure="never")
    assert mgr.current[0] != "fp32"
    q = [e.data for e in events if e.kind == "tier.quarantine"]
    assert q and q[0]["tier"] == "fp32" and str(f) in q[0]["problem"]
    assert len(mgr(inputs[0])) == 1


def test_sha_mismatch_variant_is_never_used(fresh_folder: Path, bus_events) -> None:
    bus, events = bus_events
    p = fresh_folder / "manifest.json"
    d = json.loads(p.read_text())
    d["variants"][0]["sha256"] = "f" * 64
    p.write_text(json.dumps(d))
    mgr = _manager(fresh_folder, bus, measure="never")
    assert ("fp32", "onnxruntime") not in mgr.policy.profiles
    assert any(e.kind == "tier.quarantine" and "sha256" in e.data["problem"] for e in events)
    with pytest.raises(ModelError, match="no usable variant fp32"):
        mgr.pin("fp32")


def test_runtime_failure_falls_back_for_the_same_frame(model_folder: Path, inputs, bus_events) -> None:
    bus, events = bus_events
    refs = _refs(model_folder, inputs[:1])
    mgr = _manager(model_folder, bus, initial="fp32")
    mgr._active.backend.close()  # the session dies under the manager: its next run raises BackendError
    (y,) = mgr(inputs[0])
    assert np.abs(y - refs[0]).max() < 0.05
    assert mgr.current[0] != "fp32" and mgr.frames == 1
    assert [e.data["tier"] for e in events if e.kind == "tier.quarantine"] == ["fp32"]
    assert events[-1].kind == "tier.switch" and events[-1].data["reason"].startswith("fallback")


def test_no_usable_variant_left_is_a_clear_error(fresh_folder: Path, inputs, bus_events) -> None:
    bus, _ = bus_events
    mgr = _manager(fresh_folder, bus, measure="never")
    for v in list(mgr.policy.profiles):
        mgr.policy.quarantined.add(v)
    mgr._active.backend.close()
    with pytest.raises(ModelError, match="no usable variant left"):
        mgr(inputs[0])
    with pytest.raises(ModelError, match="input shape"):
        mgr(np.zeros((1, 3, 8, 8), np.float32))


def test_battery_drain_switches_down_and_back_up(model_folder: Path, inputs, bus_events) -> None:
    bus, events = bus_events
    clock = FakeClock()
    dev = ScriptedDevice(clock, battery_percent=drain(35, 1.0), charging=windows(False, (20, 1e9, True)))
    mgr = _manager(model_folder, bus, device=dev, clock=clock, rules=["battery < 30 and not charging -> max_tier int8"],
                   min_dwell_s=2, up_after_s=3, background=False, initial="fp32")
    tiers = []
    for i in range(400):
        mgr(inputs[i % len(inputs)])
        tiers.append(mgr.tier)
        clock.advance(0.1)
    assert "int8" in tiers and tiers[-1] != "int8"
    switches = [e.data for e in events if e.kind == "tier.switch" and e.data["reason"] != "initial"]
    assert switches[0]["to_tier"] == "int8" and "battery" in switches[0]["reason"]
    assert len(switches) == 2


def test_from_config_reads_the_models_section(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sdk.config import load_config
    from sdk.models.builtin import tiny_convnet
    from sdk.models.manager import ModelManager
    from sdk.models.variants import make_model_folder
    from sdk.testing import FakeClock, ScriptedDevice

    make_model_folder(tmp_path / "m", tiny_convnet(tmp_path / "src.onnx", input_hw=(16, 16)), "m", tiers=("fp32",))
    toml = tmp_path / "ember.toml"
    toml.write_text('[models]\nbudget_ms = 12.5\nthreads = 2\nrules = ["battery < 30 -> max_tier int8"]\n')
    cfg = load_config(toml, env={})
    clock = FakeClock()
    manager = ModelManager.from_config(tmp_path / "m", cfg, device=ScriptedDevice(clock), clock=clock)
    assert manager.policy.budget_ms == 12.5
    assert manager.backend_options["onnxruntime"] == {"threads": 2}
    assert any("battery < 30" in str(r) for r in manager.policy.rules)
    manager.close()


def test_a_variant_that_fails_its_warm_up_is_closed(fresh_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sdk.models.store as store_mod
    from sdk.models.store import ModelStore

    m = Manifest.load(fresh_folder)
    m.input["shape"] = [1, 3, 16, 16]  # the files take 32x32: loading works, the warm-up run fails
    m.save()
    opened, real_load = [], store_mod.load_backend

    def recording_load(*args, **kwargs):  # type: ignore[no-untyped-def]  # the real loader, remembered
        opened.append(real_load(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(store_mod, "load_backend", recording_load)
    store = ModelStore(fresh_folder, backends=["onnxruntime"])
    v = store.manifest.variant("fp32", "onnxruntime")
    with pytest.raises(ModelError, match="model.fp32.onnx"):
        store.load(v)
    assert len(opened) == 1 and opened[0]._closed and opened[0]._session is None
    assert not v.usable
