"""Shadow tests on real models through ONNX Runtime and LiteRT: the health app's beat classifier is the
active model; the same weights exported to LiteRT pass, perturbed weights or a slow graph are rejected."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sdk.models.manifest import Manifest
from sdk.rollout.shadow import ShadowCriteria, ShadowTest, load_model

HEALTH = Path(__file__).resolve().parents[2] / "apps" / "health" / "model"


def _folder(tmp: Path, model: onnx.ModelProto) -> Path:
    """A model folder with the health manifest and one fp32 ONNX variant ``model``."""
    tmp.mkdir()
    onnx.save(model, str(tmp / "model.fp32.onnx"))
    m = Manifest.from_dict(json.loads((HEALTH / "manifest.json").read_text()) | {"variants": []})
    m.add_variant("fp32", "model.fp32.onnx", folder=tmp)
    m.save(tmp)
    return tmp


def _perturbed(tmp: Path) -> Path:
    model = onnx.load(str(HEALTH / "model.fp32.onnx"))
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        w = numpy_helper.to_array(init)
        if w.dtype == np.float32 and w.size > 1:
            init.CopyFrom(numpy_helper.from_array((w + rng.standard_normal(w.shape) * w.std() * 1.5)
                                                  .astype(np.float32), init.name))
    return _folder(tmp / "perturbed", model)


def _slow(tmp: Path) -> Path:
    """The same weights plus a chain of 384x384 MatMuls on the input, added to the logits times zero."""
    model = onnx.load(str(HEALTH / "model.fp32.onnx"))
    g = model.graph
    out = g.output[0].name
    g.node[-1].output[0] = "orig_out"
    w = np.random.default_rng(1).standard_normal((384, 384)).astype(np.float32) / 20
    g.initializer.extend([numpy_helper.from_array(w, "slow_w"), numpy_helper.from_array(np.array([1, 384]), "slow_shape"),
                          numpy_helper.from_array(np.zeros(1, np.float32), "slow_zero")])
    nodes, prev = [helper.make_node("Reshape", [g.input[0].name, "slow_shape"], ["slow0"])], "slow0"
    for i in range(1, 301):
        nodes.append(helper.make_node("MatMul", [prev, "slow_w"], [f"slow{i}"]))
        prev = f"slow{i}"
    nodes += [helper.make_node("ReduceSum", [prev], ["slow_sum"], keepdims=0),
              helper.make_node("Mul", ["slow_sum", "slow_zero"], ["slow_nothing"]),
              helper.make_node("Add", ["orig_out", "slow_nothing"], [out])]
    g.node.extend(nodes)
    g.value_info.append(helper.make_tensor_value_info("orig_out", TensorProto.FLOAT, None))
    return _folder(tmp / "slow", model)


def _run(shadow: ShadowTest, frames: int = 400) -> None:
    rng = np.random.default_rng(7)
    for _ in range(frames):
        shadow(rng.standard_normal((1, 3, 128)).astype(np.float32))


@pytest.fixture(scope="module")
def active():  # type: ignore[no-untyped-def]
    return load_model(HEALTH, "fp32", "onnxruntime")


def test_same_weights_other_runtime_is_promoted(active) -> None:  # type: ignore[no-untyped-def]
    events: list[tuple[str, dict]] = []
    shadow = ShadowTest(active, load_model(HEALTH, "fp32", "litert"), fraction=0.5,
                        criteria=ShadowCriteria(min_agreement=0.95, max_p95_ms=50, min_frames=150, max_drift=0.05),
                        emit=lambda kind, **d: events.append((kind, d)), deployment="d-3")
    _run(shadow, 200)
    assert shadow.decision() == "pending" and events == []  # 100 of 150 frames so far
    _run(shadow, 200)
    assert [(k, d["decision"], d["frames"], d["deployment"]) for k, d in events] == [
        ("rollout.shadow", "promote", 150, "d-3")]
    r = shadow.report()
    assert r["decision"] == "promote" and r["frames"] == 200 and r["offered"] == 400, r
    assert r["agreement"] >= 0.99 and r["errors"] == 0 and r["mean_abs_diff"] < 1e-3
    assert r["candidate_p95_ms"] is not None and r["candidate_p95_ms"] < 50


def test_perturbed_weights_are_rejected(active, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shadow = ShadowTest(active, load_model(_perturbed(tmp_path)), fraction=0.5,
                        criteria=ShadowCriteria(min_agreement=0.95, min_frames=150))
    _run(shadow)
    r = shadow.report()
    assert r["decision"] == "reject" and r["agreement"] < 0.95 and "agreement" in r["reasons"][0], r


def test_slow_candidate_is_rejected_on_latency(active, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    slow = load_model(_slow(tmp_path))
    shadow = ShadowTest(active, slow, fraction=0.5, criteria=ShadowCriteria(min_frames=100, max_p95_ms=1.0))
    _run(shadow, 200)
    r = shadow.report()
    assert r["agreement"] == 1.0 and r["candidate_p95_ms"] > 1.0 > r["active_p95_ms"], r  # same answers, slower
    assert r["decision"] == "reject" and "p95" in r["reasons"][0]


def test_candidate_errors_never_reach_the_app(active) -> None:  # type: ignore[no-untyped-def]
    def broken(x: np.ndarray) -> list[np.ndarray]:
        raise RuntimeError("candidate kernel failed")

    shadow = ShadowTest(active, broken, fraction=1.0, criteria=ShadowCriteria(min_frames=10))
    x = np.zeros((1, 3, 128), np.float32)
    outs = [shadow(x) for _ in range(5)]
    assert all(np.array_equal(o[0], active.run(x)[0]) for o in outs)
    assert shadow.errors == 5 and shadow.decision() == "reject" and "RuntimeError" in shadow.report()["reasons"][0]


def test_budget_skips_frames(active) -> None:  # type: ignore[no-untyped-def]
    shadow = ShadowTest(active, active, fraction=1.0, budget_ms=0.0)
    _run(shadow, 20)
    assert shadow.frames == 1 and shadow.skipped_budget == 19  # the first frame measures the candidate
