"""The int8-mixed search on models with many layers (block scan, then layers), the fp16 range
check, and ONNX Runtime's integer kernels for the int8 tier. Real ONNX Runtime sessions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from sdk.models.variants import make_fp16
from sdk.optimize.data import Dataset
from sdk.optimize.measure import predict, score
from sdk.optimize.quantize import quantize_static_int8
from sdk.optimize.sensitivity import block_ranking, mixed_precision
from sdk.optimize.tiers import fp16_builder


def _chain(path: Path, outlier_after: str = "fc2") -> Path:
    """x[8] → fc0 … fc5 (Gemm 8→8, tanh between); ``outlier_after`` scales one output channel by 500
    and the next layer undoes it, so one tensor inside a block spans a range that int8 per-tensor
    activations cannot hold without wiping the other channels out."""
    rng = np.random.default_rng(0)
    nodes, inits, prev = [], [], "x"
    weights = [(rng.standard_normal((8, 8)) / np.sqrt(8)).astype(np.float32) for _ in range(6)]
    k = int(outlier_after[2:])
    weights[k][0] *= 500.0  # Gemm transB=1: row 0 is output channel 0
    weights[k + 1][:, 0] /= 500.0
    for i, w in enumerate(weights):
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("Gemm", [prev, f"w{i}"], [f"g{i}"], transB=1, name=f"fc{i}"))
        prev = f"g{i}"
        if i != k and i < 5:  # keep the outlier channel linear into the next layer
            nodes.append(helper.make_node("Tanh", [prev], [f"t{i}"], name=f"tanh{i}"))
            prev = f"t{i}"
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                          [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, 8])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_block_scan_finds_the_sensitive_block_and_the_search_keeps_only_its_layers(tmp_path: Path) -> None:
    src = _chain(tmp_path / "chain.onnx")
    rng = np.random.default_rng(1)
    cal, sel = Dataset(rng.standard_normal((32, 8)).astype(np.float32)), \
        Dataset(rng.standard_normal((64, 8)).astype(np.float32))
    ref = predict(src, sel)
    scan = {"task": "regression", "method": "minmax", "workdir": tmp_path, "labels": ref, "fp32_outputs": ref,
            "fp32_score": 100.0, "calib_limit": None}
    ranking, rows = block_ranking(src, cal, sel, block=2, refine=1, **scan)
    assert rows[0].node == "fc2 … fc3 (2 layers)" and rows[0].drop_pts > 5 * max(r.drop_pts for r in rows[1:3])
    assert {r.node for r in ranking[:2]} == {"fc2", "fc3"} and len(rows) == 3 + 2  # 3 blocks, then 2 layers
    assert sorted(r.node for r in ranking) == [f"fc{i}" for i in range(6)]
    assert [r.node for r in ranking[2:]] in (["fc1", "fc0", "fc5", "fc4"], ["fc5", "fc4", "fc1", "fc0"])

    plain = score(predict(quantize_static_int8(src, tmp_path / "plain.onnx", cal.samples()), sel), ref, "regression")
    res = mixed_precision(src, tmp_path / "mixed.onnx", cal, sel, ranking=ranking, max_drop=100 - plain - 0.1,
                          **{k: v for k, v in scan.items() if k != "fp32_outputs"})
    assert res.within_budget and res.excluded and set(res.excluded) <= {"fc2", "fc3"}
    assert res.score >= plain  # the float layers pay for themselves


def _overflowing(path: Path) -> Path:
    """The shape of a mel front end: y = x·c (c = 100: ≤ 300, fine in fp16), z = conv(y) (3 taps of
    200: up to 1.8e5, beyond fp16), unsqueeze + transpose (ONNX Runtime runs them in fp16 while it
    runs the float math in float32), p = z², t = p / c, out = log(t). ``c`` is shared by an
    fp16-safe node and ones that must stay float32."""
    c = numpy_helper.from_array(np.array(100.0, np.float32), "c")
    w = numpy_helper.from_array(np.full((1, 1, 3), 200.0, np.float32), "w")
    inits = [c, w, numpy_helper.from_array(np.array([1], np.int64), "axes"),
             numpy_helper.from_array(np.array(2.0, np.float32), "two")]
    nodes = [helper.make_node("Mul", ["x", "c"], ["y"], name="scale"),
             helper.make_node("Conv", ["y", "w"], ["z"], pads=[1, 1], name="conv"),
             helper.make_node("Unsqueeze", ["z", "axes"], ["z4"], name="unsqueeze"),
             helper.make_node("Transpose", ["z4"], ["zt"], perm=[0, 1, 3, 2], name="flip"),
             helper.make_node("Pow", ["zt", "two"], ["p"], name="power"),
             helper.make_node("Div", ["p", "c"], ["t"], name="unscale"),
             helper.make_node("Log", ["t"], ["out"], name="log")]
    g = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 16])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 1, 16, 1])], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_fp16_keeps_the_nodes_whose_values_overflow_in_float32(tmp_path: Path) -> None:
    src = _overflowing(tmp_path / "big.onnx")
    x = np.random.default_rng(0).uniform(1.0, 3.0, (8, 1, 16)).astype(np.float32)
    ref = predict(src, Dataset(x))
    plain = predict(make_fp16(src, tmp_path / "plain16.onnx"), Dataset(x))
    assert not np.isfinite(plain).all()  # what the range check is for
    extra = fp16_builder(src, Dataset(x[:4]))(tmp_path / "fp16.onnx")
    assert extra == {"float32_nodes": ["conv", "unsqueeze", "flip", "power", "unscale", "log"]}  # only "scale" (≤ 300) is fp16
    out = predict(tmp_path / "fp16.onnx", Dataset(x))
    np.testing.assert_allclose(out, ref, rtol=2e-3)
    inits = {i.name: i.data_type for i in onnx.load(str(tmp_path / "fp16.onnx")).graph.initializer}
    assert inits["c"] == TensorProto.FLOAT16 and inits["c_fp32"] == TensorProto.FLOAT  # one copy each


def test_int8_tier_runs_on_onnx_runtimes_integer_kernels(tmp_path: Path) -> None:
    # conv + SiLU (Sigmoid·x) as in YOLOX: with int8 activations ONNX Runtime's x86 CPU provider kept
    # float Conv/Sigmoid/Mul between DequantizeLinear/QuantizeLinear (2× slower than fp32 on YOLOX);
    # with uint8 activations it fuses them into QLinearConv / QLinearSigmoid / QLinearMul.
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((16, 8, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "b")]
    g = helper.make_graph([helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
                           helper.make_node("Sigmoid", ["c"], ["s"], name="sigmoid"),
                           helper.make_node("Mul", ["c", "s"], ["y"], name="silu")], "conv",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 16, 16])], inits)
    src = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), src)
    q = quantize_static_int8(src, tmp_path / "q.onnx", [rng.random((1, 8, 16, 16), dtype=np.float32)
                                                          for _ in range(4)])
    so = ort.SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(q), so, providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node}
    assert "QLinearConv" in ops and not ops & {"Conv", "Sigmoid", "Mul"}


def test_int8_mixed_litert_is_chosen_with_litert_in_the_loop(tmp_path: Path) -> None:
    from sdk.optimize import optimize

    src = _chain(tmp_path / "chain.onnx")
    rng = np.random.default_rng(2)
    x_cal, x_ev = rng.standard_normal((32, 8)).astype(np.float32), rng.standard_normal((120, 8)).astype(np.float32)
    res = optimize(src, x_cal, x_ev, tmp_path / "out", task="regression", report=False, device="test",
                   tiers=["int8/onnxruntime", "int8-mixed/onnxruntime", "int8/litert", "int8-mixed/litert"])
    ort_mixed, lite_mixed = res.tier("int8-mixed/onnxruntime"), res.tier("int8-mixed/litert")
    assert ort_mixed.status == lite_mixed.status == "ok"
    sel = lite_mixed.extra["selection"]
    assert sel["onnxruntime_choice"] == ort_mixed.extra["excluded_nodes"] == sel["steps"][0]["excluded"]
    assert lite_mixed.extra["within_budget"] and sel["score"] >= 99.0  # on the selection half, scored by LiteRT
    assert set(lite_mixed.extra["excluded_nodes"]) <= {"fc2", "fc3"}
    assert lite_mixed.score > res.tier("int8/litert").score + 5  # and on the report half
    from sdk.optimize.toolchain import LATENCY_ROUNDS

    for t in (t for t in res.tiers if t.status == "ok"):  # every round's p50 kept; the fastest is reported
        assert len(t.extra["latency_rounds_ms"]) == LATENCY_ROUNDS
        assert min(t.extra["latency_rounds_ms"]) == t.latency_ms_p50
