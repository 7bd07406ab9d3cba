"""`optimize` end to end on a trained model: tiers, agreement, sensitivity, manifest, report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from sdk.models.manifest import Manifest, sha256_file
from sdk.optimize import measure_folder, optimize
from sdk.optimize.data import Dataset
from sdk.optimize.measure import agreement, predict
from sdk.optimize.quantize import quantizable_nodes

DEVICE = "test-device"


@pytest.fixture(scope="module")
def result(trained_onnx: Path, bars_data: dict, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("opt") / "bars"
    return optimize(trained_onnx, bars_data["calib"], (bars_data["x_eval"], bars_data["y_eval"]), out,
                    name="bars", labels=[str(i) for i in range(8)], device=DEVICE, max_drop=1.0)


def test_every_built_tier_loads_and_runs(result, bars_data: dict) -> None:  # type: ignore[no-untyped-def]
    status = {t.key: t.status for t in result.tiers}
    for key in ("fp32/onnxruntime", "fp16/onnxruntime", "int8/onnxruntime", "fp32/litert", "int8/litert"):
        assert status[key] == "ok", (key, result.tier(key).reason)
    # a conv net: the op census rules dynamic int8 out, and says why
    dyn = result.tier("int8-dynamic/onnxruntime")
    assert dyn.status == "skipped" and "Conv" in dyn.reason
    sample = Dataset(bars_data["x_eval"][:3])
    for t in result.tiers:
        if t.status == "ok":
            out = predict(result.folder / t.file, sample)
            assert out.shape == (3, 8) and np.isfinite(out).all()
            assert t.latency_ms_p50 > 0 and t.size_bytes > 0 and t.energy_mj > 0


def test_int8_agrees_with_fp32_on_most_inputs(result, bars_data: dict) -> None:  # type: ignore[no-untyped-def]
    ev = Dataset(bars_data["x_eval"][:200])
    fp32 = predict(result.folder / "model.fp32.onnx", ev)
    int8 = predict(result.folder / "model.int8.onnx", ev)
    assert agreement(fp32, int8)["top1_agreement_pct"] >= 90
    assert result.fp32_score > 40  # the model learned something (8 classes: chance is 12.5 %)
    assert abs(result.tier("int8/onnxruntime").drop_pts) < 5


def test_tflite_variants_agree_with_onnx(result) -> None:  # type: ignore[no-untyped-def]
    fp32 = result.tier("fp32/litert").extra["agreement"]
    assert fp32["vs"] == "fp32/onnxruntime" and fp32["max_abs_diff"] < 1e-3
    assert fp32["top1_agreement_pct"] == 100
    int8 = result.tier("int8/litert").extra["agreement"]
    assert int8["vs"] == "int8/onnxruntime" and int8["top1_agreement_pct"] >= 90


def test_sensitivity_returns_a_ranking_of_every_weighted_layer(result, trained_onnx: Path) -> None:  # type: ignore[no-untyped-def]
    ranking = result.sensitivity
    assert sorted(r.node for r in ranking) == sorted(quantizable_nodes(trained_onnx))
    drops = [r.drop_pts for r in ranking]
    assert drops == sorted(drops, reverse=True)
    assert all(r.output_error >= 0 for r in ranking) and any(r.output_error > 0 for r in ranking)
    saved = json.loads((result.folder / "sensitivity.json").read_text())
    assert [s["node"] for s in saved] == [r.node for r in ranking]


def test_manifest_validates_and_holds_the_measured_figures(result) -> None:  # type: ignore[no-untyped-def]
    m = Manifest.load(result.folder)
    assert m.validate(strict=True) == []
    assert len(m.verify_files()) == len(m.variants) == sum(t.status == "ok" for t in result.tiers)
    v = m.variant("int8", "litert")
    metrics = v.metrics[DEVICE]
    assert metrics["threads"] == 1 and metrics["latency_ms_p95"] >= metrics["latency_ms_p50"] > 0
    assert 0 <= metrics["accuracy"] <= 1 and metrics["energy_mj"] > 0
    assert v.extra["agreement"]["top1_agreement_pct"] >= 90
    assert m.input["shape"] == [1, 1, 16, 16] and m.labels[0] == "0"


def test_report_files(result) -> None:  # type: ignore[no-untyped-def]
    md = (result.folder / "report.md").read_text()
    assert "| int8 | litert | ok |" in md and "sensitivity" in md
    html = (result.folder / "report.html").read_text()
    assert "<table>" in html and "pareto.png" in html
    png = (result.folder / "pareto.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_measure_only_adds_a_device_without_rebuilding(result, bars_data: dict, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "copy"
    shutil.copytree(result.folder, folder)
    hashes = {p.name: sha256_file(p) for p in folder.glob("model.*")}
    measure_folder(folder, (bars_data["x_eval"][:50], bars_data["y_eval"][:50]), device="other-device",
                   report=False)
    m = Manifest.load(folder)
    for v in m.variants:
        assert set(v.metrics) == {DEVICE, "other-device"}
    assert {p.name: sha256_file(p) for p in folder.glob("model.*")} == hashes


def test_mixed_precision_keeps_sensitive_layers_in_float(trained_onnx: Path, bars_data: dict,
                                                         tmp_path: Path) -> None:
    # Scored as regression against fp32's own logits (R²), every quantized layer costs a little, so
    # keeping the most sensitive layers in float must beat plain int8; an impossible budget (-50
    # points) makes the search try every step, keep the best one and admit it missed the budget.
    x = bars_data["x_eval"][:100]
    logits = predict(trained_onnx, Dataset(x))
    res = optimize(trained_onnx, bars_data["calib"][:16], (x, logits), tmp_path / "mixed", task="regression",
                   tiers=["int8-mixed/onnxruntime"], max_drop=-50, device=DEVICE, report=True)
    t = res.tier("int8-mixed/onnxruntime")
    assert res.mixed is not None and not res.mixed.within_budget
    assert len(res.mixed.steps) == len(res.sensitivity)  # tried 0 .. n-1 float layers
    assert [len(s["excluded"]) for s in res.mixed.steps] == list(range(len(res.sensitivity)))
    plain_int8 = res.mixed.steps[0]["score"]
    assert res.mixed.score == max(s["score"] for s in res.mixed.steps) > plain_int8
    assert res.mixed.excluded and t.status == "ok" and t.extra["excluded_nodes"] == res.mixed.excluded
    model = onnx.load(str(res.folder / "model.int8-mixed.onnx"))
    float_inits = {i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    weighted = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
    kept = [n.name for n in weighted if n.input[1] in float_inits]  # float weights, not DequantizeLinear
    assert sorted(kept) == sorted(t.extra["excluded_nodes"])
    assert "NOT within" in (res.folder / "report.md").read_text()
