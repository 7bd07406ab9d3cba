"""Profiling figures are consistent; energy table and data loading behave."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sdk.cli import main
from sdk.errors import ConfigError, ModelError
from sdk.models.builtin import tiny_convnet, tiny_convnet_macs
from sdk.optimize import energy, profile_model
from sdk.optimize.data import load_dataset
from sdk.optimize.graph_stats import layer_stats


@pytest.fixture(scope="module")
def convnet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_convnet(tmp_path_factory.mktemp("p") / "tiny.onnx", input_hw=(32, 32), channels=(8, 16))


def test_profile_numbers_are_consistent(convnet: Path) -> None:
    prof = profile_model(convnet, device_class="raspberry-pi-4", runs=10, layer_runs=5)
    assert prof.macs == sum(layer.macs for layer in prof.layers)
    assert prof.macs == tiny_convnet_macs((32, 32), (8, 16))  # independent formula
    assert prof.params == 3 * 8 * 9 + 8 + 8 * 16 * 9 + 16 + 16 * 10 + 10
    assert prof.peak_activation_bytes >= prof.largest_tensor_bytes == 8 * 32 * 32 * 4
    conv_times = [layer.latency_ms for layer in prof.layers if layer.op_type == "Conv"]
    assert len(conv_times) == 2 and all(t is not None and t > 0 for t in conv_times)
    assert prof.latency_ms_p95 >= prof.latency_ms_p50 > 0
    assert prof.size_bytes == convnet.stat().st_size
    if prof.energy_source != "rapl":
        assert prof.energy_source == "table:raspberry-pi-4"
        assert prof.energy_mj == pytest.approx(prof.latency_ms_p50 * 2.7)


def test_profile_cli_json_and_table(convnet: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["profile", str(convnet), "--json", "--runs", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["macs"] == sum(layer["macs"] for layer in data["layers"])
    assert main(["profile", str(convnet), "--runs", "5", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "MACs" in out and "conv" in out


def test_layer_stats_gemm_and_conv_macs(convnet: Path) -> None:
    by_name = {s.name: s for s in layer_stats(convnet)}
    assert by_name["conv0"].macs == 32 * 32 * 8 * 3 * 9
    assert by_name["fc"].macs == 16 * 10 and by_name["fc"].params == 170


def test_power_table_lookup_and_override(tmp_path: Path) -> None:
    assert energy.power_for("aarch64-cortex-a76").source == "table:raspberry-pi-5"
    assert energy.power_for("some-new-board").source == "default"
    table = tmp_path / "p.toml"
    table.write_text('[devices.myboard]\nwatts = 2.0\naliases = ["x"]\n[default]\nwatts = 1.0\n')
    assert energy.energy_mj(3.0, "x", table) == (6.0, "table:myboard")
    table.write_text('[devices.bad]\nwatts = "lots"\n')
    with pytest.raises(ConfigError, match="watts"):
        energy.power_for("bad", table)


def test_data_formats(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((5, 1, 4, 4), dtype=np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(5))
    ds = load_dataset(tmp_path / "d.npz")
    assert ds.x.shape == (5, 1, 4, 4) and list(ds.y) == [0, 1, 2, 3, 4]
    folder = tmp_path / "samples"
    folder.mkdir()
    for i in range(3):
        np.save(folder / f"{i}.npy", x[i:i + 1])  # stored as [1, C, H, W]
    ds = load_dataset(folder).check([1, 1, 4, 4])
    assert ds.x.shape == (3, 1, 4, 4)
    with pytest.raises(ModelError, match="not found"):
        load_dataset(tmp_path / "missing.npz")
    with pytest.raises(ModelError, match="labels"):
        load_dataset(folder).check([1, 1, 4, 4], need_labels=True)


def test_latency_runs_at_least_min_time_beyond_the_run_count(convnet: Path) -> None:
    from sdk.optimize.measure import latency

    x = np.zeros((1, 3, 32, 32), np.float32)
    assert latency(convnet, x, runs=3, warmup=1).runs == 3
    lat = latency(convnet, x, runs=3, warmup=1, min_time_s=0.2)
    assert lat.runs > 3  # kept going until 0.2 s had passed
