"""The per-layer latency table: real one-layer ONNX models timed by ONNX Runtime, cached per device."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from sdk.compress.latency_lut import LatencyTable, layers_of, model_costs, to_onnx
from sdk.errors import ModelError
from sdk.optimize import energy
from sdk.optimize.graph_stats import layer_stats, peak_activation_bytes
from tests.compress._search_stub import INPUT_SHAPE, tiny_net


@pytest.fixture(scope="module")
def lut_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lut") / "lut.json"


def lut(path: Path) -> LatencyTable:
    return LatencyTable(path, runs=10, min_time_s=0.0)


def test_identical_layers_share_one_entry_and_the_table_is_cached_per_device(lut_path: Path) -> None:
    net = tiny_net(width=8, depth=4)
    table = lut(lut_path)
    costs = table.layer_costs(net, INPUT_SHAPE)
    keys = [k for k, _ in costs]
    # conv+relu, 3 × (dw+relu, pw+relu), pool, flatten, linear: the 3 blocks are 2 configurations
    assert len(keys) == 1 + 6 + 3
    assert len(set(keys)) == 1 + 2 + 3
    assert table.measured == len(set(keys))
    assert all(ms >= 0 for _, ms in costs)
    data = json.loads(lut_path.read_text())
    (key,) = data["tables"]
    assert "onnxruntime-" in key and "threads1" in key
    assert set(data["tables"][key]["entries"]) == set(keys)
    again = lut(lut_path)  # a new process would read the same file: nothing is timed again
    assert again.layer_costs(net, INPUT_SHAPE) == costs and again.measured == 0


def test_conv_and_its_relu_are_one_layer_as_onnx_runtime_fuses_them(lut_path: Path) -> None:
    layers = layers_of(to_onnx(tiny_net(width=4, depth=2), INPUT_SHAPE))
    ops = [[n.op_type for n in lay.nodes] for lay in layers]
    assert ops[:3] == [["Conv", "Relu"], ["Conv", "Relu"], ["Conv", "Relu"]]
    dw = json.loads(layers[1].key)[0]
    assert ["group", 4] in dw[2]  # the depthwise conv's key holds its grouping and shapes
    assert dw[3][0] == ["x", [1, 4, 16, 16], 1]


def test_fit_recovers_scale_and_overhead(lut_path: Path) -> None:
    table = lut(lut_path)
    nets = [tiny_net(w, d) for w, d in ((4, 1), (8, 2), (16, 3))]
    sums = [table.layer_sum(n, INPUT_SHAPE) for n in nets]
    fit = table.fit(nets, INPUT_SHAPE, measured=[1.5 * s + 0.02 for s in sums])
    assert fit.scale == pytest.approx(1.5) and fit.overhead_ms == pytest.approx(0.02)
    assert fit.calibration_mape == pytest.approx(0.0, abs=1e-6)
    assert table.predict(nets[1], INPUT_SHAPE) == pytest.approx(1.5 * sums[1] + 0.02)
    with pytest.raises(ModelError, match="at least 2"):
        table.fit(nets[:1], INPUT_SHAPE)


def test_surrogate_predicts_measured_latency_of_unseen_models(lut_path: Path) -> None:
    """Fit on three models, judge on three others. The report must be its own arithmetic (its error is the
    error of the predictions it lists against the latencies it measured); the accuracy bound is loose on
    purpose: these models run in 10-40 microseconds and the machine is shared, so the real figure comes from
    ``bench/compress.py`` (the speech model family), not from a timer in a test."""
    table = LatencyTable(lut_path.with_name("real.json"), runs=20, min_time_s=0.02)
    table.fit([tiny_net(w, d) for w, d in ((4, 1), (16, 2), (32, 4))], INPUT_SHAPE)
    unseen = [tiny_net(w, d) for w, d in ((8, 1), (8, 3), (24, 2))]
    report = table.mape(unseen, INPUT_SHAPE)
    pred, meas = np.array(report["predicted_ms"]), np.array(report["measured_ms"])
    assert (meas > 0).all() and report["mape"] == pytest.approx(np.mean(np.abs(pred - meas) / meas) * 100)
    assert report["max_ape"] == pytest.approx(np.max(np.abs(pred - meas) / meas) * 100)
    assert report["max_ape"] >= report["mape"]
    assert report["mape"] < 100, report
    assert pred[1] > pred[0]  # deeper is predicted slower
    given = table.mape(unseen, INPUT_SHAPE, measured=list(pred * 1.25))  # 20 % below every "measurement"
    assert given["mape"] == pytest.approx(20.0) and given["predicted_ms"] == report["predicted_ms"]


def test_costs_reuse_the_profile_counters_and_energy_model(lut_path: Path, tmp_path: Path) -> None:
    import onnx

    net = tiny_net(width=8, depth=2)
    table = lut(lut_path)
    c = model_costs(net, INPUT_SHAPE, table, device_class="x86_64-avx512")
    proto = to_onnx(net, INPUT_SHAPE)
    onnx.save(proto, str(tmp_path / "m.onnx"))
    stats = layer_stats(tmp_path / "m.onnx")
    first_conv = 8 * 16 * 16 * 9  # 8 output channels, 16x16 outputs, 3x3x1 kernel
    assert c.macs == sum(s.macs for s in stats) > first_conv
    assert c.params == sum(s.params for s in stats)
    assert c.peak_activation_bytes == peak_activation_bytes(tmp_path / "m.onnx")[0] >= 2 * 8 * 16 * 16 * 4
    assert c.latency_ms == pytest.approx(table.predict(net, INPUT_SHAPE))
    assert c.energy_mj == pytest.approx(energy.energy_mj(c.latency_ms, "x86_64-avx512")[0])


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="input shape"):
        lut(tmp_path / "t.json").layer_costs(tiny_net())
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ModelError, match="delete it"):
        LatencyTable(bad)
    with pytest.raises(ModelError, match="stat"):
        LatencyTable(tmp_path / "x.json", stat="mean")
    with pytest.raises(ModelError, match="not a readable ONNX"):
        lut(tmp_path / "t.json").layer_costs(np.zeros(3).tobytes().hex() + ".onnx")
