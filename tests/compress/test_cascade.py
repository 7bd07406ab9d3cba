"""Cascades: the threshold chosen on validation data meets its accuracy budget on held-out data, the
manifest records the cascade, the model manager runs it (real ONNX Runtime) and the degradation ladder
raises the exit rate on a low battery (ScriptedDevice)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sdk.compress.cascade import cascade_costs, select_cascade, write_cascade
from sdk.compress.exits import simulate, softmax
from sdk.compress.folder import export_onnx
from sdk.errors import ConfigError, ModelError
from sdk.events import EventBus
from sdk.models.manager import ModelManager
from sdk.models.manifest import Manifest
from sdk.models.variants import make_model_folder
from sdk.testing import FakeClock, ScriptedDevice, drain
from tests.compress._search_stub import N_CLASSES, tiny_data, tiny_net


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A big model right 90 % of the time and a small one that is as right as the big one on the easy 60 %
    of the inputs (confidence 0.75..1) and right 30 % of the time on the hard rest (confidence 0.3..0.6):
    thresholds between 0.6 and 0.75 lose nothing, much lower ones lose far more than the budget."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    easy = rng.random(n) < 0.6
    conf = np.where(easy, rng.uniform(0.75, 1.0, n), rng.uniform(0.3, 0.6, n))
    big_ok = rng.random(n) < 0.9
    small_ok = np.where(easy, big_ok, rng.random(n) < 0.3)

    def probs(ok: np.ndarray, top: np.ndarray) -> np.ndarray:
        pred = np.where(ok, y, (y + rng.integers(1, 10, n)) % 10)
        p = np.tile(((1 - top) / 9)[:, None], (1, 10))
        p[np.arange(n), pred] = top
        return p

    return probs(small_ok, conf), probs(big_ok, np.full(n, 0.97)), y


def test_threshold_from_validation_meets_the_budget_on_held_out_data() -> None:
    sv, bv, yv = synthetic(4000, seed=1)
    st, bt, yt = synthetic(4000, seed=2)
    costs = cascade_costs(1e5, 1e6)
    choice = select_cascade(sv, bv, yv, 1e5, 1e6, budget_points=0.5)
    held = simulate([st, bt], yt, choice.threshold, costs)
    assert held.loss_points <= 0.5, held
    assert choice.threshold <= 0.75 and held.exit_rates[0] >= 0.58 and held.saved > 0.45  # the easy ones exit
    always_small = simulate([st, bt], yt, 0.0, costs)
    assert always_small.loss_points > 10  # so the budget did bind
    # the cheapest on validation: lowering the threshold further would break the budget there
    lower = simulate([sv, bv], yv, choice.threshold - 0.02, costs)
    assert lower.loss_points > 0.5 - 1e-9
    with pytest.raises(ConfigError, match="budget must be >= 0"):
        select_cascade(sv, bv, yv, 1e5, 1e6, budget_points=-1)


def test_the_safety_margin_trades_savings_for_confidence() -> None:
    sv, bv, yv = synthetic(2000, seed=3)
    bare = select_cascade(sv, bv, yv, 1e5, 1e6, budget_points=0.5, z=0.0)
    careful = select_cascade(sv, bv, yv, 1e5, 1e6, budget_points=0.5, z=3.0)
    assert careful.threshold >= bare.threshold and careful.loss_points <= bare.loss_points <= 0.5


@pytest.fixture
def cascade_folder(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    torch.manual_seed(0)
    x, _ = tiny_data(24, seed=3)
    big, small = tiny_net(16, 3), tiny_net(4, 1)
    with torch.no_grad():
        small[-1].weight.mul_(60.0)  # a confident small model on some inputs, unsure on others
        ps, pb = softmax(small(torch.from_numpy(x)).numpy()), softmax(big(torch.from_numpy(x)).numpy())
    make_model_folder(tmp_path / "m", export_onnx(big, tmp_path / "big.onnx", x), "kws", tiers=("fp32",))
    export_onnx(small, tmp_path / "small.onnx", x)
    threshold = float(np.median(ps.max(1)))
    choice = simulate([ps, pb], np.zeros(len(x)), threshold, cascade_costs(10, 100))
    low = simulate([ps, pb], np.zeros(len(x)), float(np.quantile(ps.max(1), 0.1)), cascade_costs(10, 100))
    write_cascade(tmp_path / "m", tmp_path / "small.onnx", choice, 10, 100, 0.5, degraded=low,
                  degraded_budget_points=2.0)
    return tmp_path / "m", x, ps, pb


def test_manifest_records_the_cascade_and_the_manager_runs_it(cascade_folder) -> None:  # type: ignore[no-untyped-def]
    folder, x, ps, pb = cascade_folder
    spec = json.loads((folder / "manifest.json").read_text())["exits"]
    assert spec["kind"] == "cascade" and spec["stages"][1]["head"] == "variants"
    assert spec["stages"][0]["head"]["file"] == "cascade_small.onnx" and len(spec["stages"][0]["head"]["sha256"]) == 64
    assert spec["expected_exit_rate"][0] == pytest.approx(0.5, abs=0.05) and spec["avg_macs"] < spec["full_macs"]
    assert spec["low_battery_threshold"] < spec["threshold"]
    with ModelManager(folder, bus=EventBus(), measure="never") as mgr:
        for i in range(len(x)):
            out = mgr(x[i:i + 1])[0][0]
            want = ps[i] if ps[i].max() >= spec["threshold"] else pb[i]
            np.testing.assert_allclose(softmax(out), want, atol=1e-4)
        assert mgr.exits.counts == [int((ps.max(1) >= spec["threshold"]).sum()), int((ps.max(1) < spec["threshold"]).sum())]
        assert mgr.stats()["exit_rate"] == pytest.approx(mgr.exits.counts[0] / len(x), abs=1e-4)


def test_a_broken_cascade_is_refused_clearly_and_the_big_model_still_serves(cascade_folder, caplog) -> None:  # type: ignore[no-untyped-def]
    folder, x, _, pb = cascade_folder
    data = json.loads((folder / "manifest.json").read_text())
    data["exits"]["threshold"] = -1
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="exits.threshold"):
        Manifest.load(folder)
    data["exits"]["threshold"] = 0.5
    (folder / "manifest.json").write_text(json.dumps(data))
    (folder / "cascade_small.onnx").write_bytes(b"not a model")
    with caplog.at_level(logging.WARNING), ModelManager(folder, bus=EventBus(), measure="never") as mgr:
        assert mgr.exits is None
        np.testing.assert_allclose(softmax(mgr(x[:1])[0][0]), pb[0], atol=1e-4)
    assert "sha256" in caplog.text


def test_low_battery_lowers_the_threshold_so_more_inputs_exit_early(cascade_folder) -> None:  # type: ignore[no-untyped-def]
    folder, x, _, _ = cascade_folder
    clock = FakeClock()
    device = ScriptedDevice(clock, battery_percent=drain(30, 1.0), charging=False)
    with ModelManager(folder, bus=EventBus(), measure="never", device=device, clock=clock) as mgr:
        spec = mgr.store.manifest.extra["exits"]
        ladder = mgr.degrader(budget_ms=1e6, down="battery < 20 and not charging", up="battery > 50",
                              min_dwell_s=1.0, window_s=0.5)
        rates = []
        for i in range(240):
            clock.advance(0.1)
            before = mgr.exits.counts[0]
            ladder(x[i % len(x):i % len(x) + 1])
            rates.append((mgr.exits.threshold, mgr.exits.counts[0] - before))
        assert ladder.engaged() == ["tier", "exit_threshold"]
        assert mgr.exits.threshold == pytest.approx(spec["low_battery_threshold"])
        early = [n for t, n in rates[:96] if t == spec["threshold"]]   # battery above 20 % for the first 10 s
        late = [n for t, n in rates[-48:] if t == spec["low_battery_threshold"]]
        assert len(early) == 96 and len(late) == 48
        assert np.mean(late) > np.mean(early)  # a higher exit rate once the battery is low
        ladder.reset()
        assert mgr.exits.threshold == pytest.approx(spec["threshold"])


def test_cli_builds_a_cascade_folder_the_manager_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sdk.cli import main

    x, _ = tiny_data(4)
    torch.manual_seed(1)
    export_onnx(tiny_net(4, 1), tmp_path / "small.onnx", x)
    export_onnx(tiny_net(16, 2), tmp_path / "big.onnx", x)
    out = tmp_path / "casc"
    rc = main(["compress", "cascade", "--small", str(tmp_path / "small.onnx"), "--big", str(tmp_path / "big.onnx"),
               "--data", "tests.compress._search_stub:cascade_data", "--budget", "5", "--low-battery-budget", "10", "--out", str(out),
               "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    spec = Manifest.load(out).extra["exits"]
    assert spec["threshold"] == res["threshold"] and spec["low_battery_threshold"] == res["low_battery_threshold"]
    assert res["held_out"]["n"] == 30 and res["small_macs"] < res["big_macs"]
    with ModelManager(out, bus=EventBus(), measure="never") as mgr:
        assert len(mgr(x[:1])[0][0]) == N_CLASSES and sum(mgr.exits.counts) == 1
    assert main(["compress", "cascade", "--small", "nope.onnx", "--big", str(tmp_path / "big.onnx"), "--data",
                 "tests.compress._search_stub:cascade_data", "--out", str(out)]) == 2
    assert "nope.onnx: file not found" in capsys.readouterr().err
