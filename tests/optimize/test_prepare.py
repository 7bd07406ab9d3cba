"""Models as the public ones come: old opsets, dynamic dimensions, several outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from sdk.cli import main
from sdk.errors import ModelError
from sdk.models.manifest import Manifest
from sdk.optimize import optimize
from sdk.optimize.prepare import prepare_model, resolve_shape

ORT_TIERS = ["fp32/onnxruntime", "int8/onnxruntime"]


def _net(path: Path, opset: int, in_dims: list, heads: int = 1) -> Path:
    """conv(4→8, per-channel weights) → relu → global-avg-pool → flatten → ``heads`` × gemm(8→3)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 1, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat")]
    outs = []
    for h in range(heads):
        inits.append(numpy_helper.from_array(rng.standard_normal((3, 8)).astype(np.float32), f"fc{h}"))
        nodes.append(helper.make_node("Gemm", ["f", f"fc{h}"], [f"y{h}"], transB=1, name=f"fc{h}"))
        outs.append(helper.make_tensor_value_info(f"y{h}", TensorProto.FLOAT, ["N", 3]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_dims)], outs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 6
    onnx.save(m, path)
    return path


def _x(n: int, h: int = 12, w: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, h, w), dtype=np.float32)


def test_opset_11_model_gets_an_int8_tier_that_onnxruntime_runs(tmp_path: Path) -> None:
    src = _net(tmp_path / "old.onnx", 11, [1, 1, 12, 12])
    res = optimize(src, _x(16), _x(24, seed=1), tmp_path / "out", task="regression", tiers=ORT_TIERS,
                   report=False, device="test")
    assert res.prepare["opset"] == [11, 13]
    int8 = res.tier("int8/onnxruntime")
    assert int8.status == "ok", int8.reason
    model = onnx.load(str(res.folder / int8.file))
    assert next(o.version for o in model.opset_import if o.domain == "") >= 13
    assert any(n.op_type == "DequantizeLinear" for n in model.graph.node)
    s = ort.InferenceSession(str(res.folder / int8.file), providers=["CPUExecutionProvider"])
    assert s.run(None, {"x": _x(1)})[0].shape == (1, 3)
    assert int8.score > 90  # R² vs fp32 outputs, in percent


def test_opset_before_7_is_refused_clearly(tmp_path: Path) -> None:
    src = _net(tmp_path / "ancient.onnx", 6, [1, 1, 12, 12])
    with pytest.raises(ModelError, match="opset 6.*re-export"):
        prepare_model(src, tmp_path / "p.onnx", [1, 1, 12, 12])


def test_dynamic_dims_come_from_the_data_and_reach_the_manifest(tmp_path: Path) -> None:
    src = _net(tmp_path / "dyn.onnx", 13, ["N", 1, "H", "W"])
    res = optimize(src, _x(8, 10, 14), _x(12, 10, 14, seed=1), tmp_path / "out", task="regression",
                   tiers=ORT_TIERS + ["fp32/litert"], report=False, device="test")
    assert res.prepare["input_shape"] == [1, 1, 10, 14]
    assert Manifest.load(res.folder).input["shape"] == [1, 1, 10, 14]
    assert all(t.status == "ok" for t in res.tiers), [(t.key, t.reason) for t in res.tiers]
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(res.folder / "model.fp32.tflite"))
    assert list(it.get_input_details()[0]["shape"]) == [1, 10, 14, 1]  # static, NHWC


def test_mismatched_samples_of_a_dynamic_model_are_a_clear_error(tmp_path: Path) -> None:
    src = _net(tmp_path / "dyn.onnx", 13, ["N", 1, "H", "W"])
    with pytest.raises(ModelError, match=r"samples disagree.*\(1, 10, 14\).*\(1, 12, 12\).*--input-shape"):
        optimize(src, _x(8, 10, 14), _x(8), tmp_path / "out", task="regression", tiers=ORT_TIERS, report=False)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_input_shape_option_fixes_the_dims(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _net(tmp_path / "dyn.onnx", 13, ["N", 1, "H", "W"])
    assert resolve_shape("x", [None, 1, None, None], [], "x=1x1x16x8") == [1, 1, 16, 8]
    with pytest.raises(ModelError, match="declared as"):
        resolve_shape("x", [None, 1, None, None], [], [1, 3, 16, 8])  # the channel dim is fixed at 1
    with pytest.raises(ModelError, match="model's input is 'x'"):
        resolve_shape("x", [None, 1, None, None], [], "images=1x1x16x8")
    np.savez(tmp_path / "cal.npz", x=_x(8, 16, 8))
    np.savez(tmp_path / "ev.npz", x=_x(8, 16, 8, seed=1))
    rc = main(["optimize", str(src), "--calib", str(tmp_path / "cal.npz"), "--eval", str(tmp_path / "ev.npz"),
               "--out", str(tmp_path / "cli"), "--task", "regression", "--tiers", "fp32/onnxruntime",
               "--input-shape", "x=1x1x16x8", "--json"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["prepare"]["input_shape"] == [1, 1, 16, 8]
    rc = main(["optimize", str(src), "--calib", str(tmp_path / "cal.npz"), "--eval", str(tmp_path / "ev.npz"),
               "--out", str(tmp_path / "cli2"), "--input-shape", "x=1x1x9", "--tiers", "fp32/onnxruntime"])
    assert rc != 0
    assert "does not fit input 'x'" in capsys.readouterr().err


def test_multi_output_model_end_to_end(tmp_path: Path) -> None:
    src = _net(tmp_path / "two.onnx", 13, [1, 1, 12, 12], heads=2)
    tiers = ORT_TIERS + ["fp16/onnxruntime", "fp32/litert", "int8/litert"]
    res = optimize(src, _x(32), _x(40, seed=1), tmp_path / "out", task="regression", tiers=tiers, device="test")
    assert all(t.status == "ok" for t in res.tiers), [(t.key, t.reason) for t in res.tiers]
    m = Manifest.load(res.folder)
    assert m.output["names"] == ["y0", "y1"]
    ref = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    x = _x(1, seed=5)
    y0, y1 = ref.run(None, {"x": x})
    from sdk.optimize.tflite_export import to_tflite_layout
    from sdk.runtime.backends import load_backend
    with load_backend(res.folder / "model.fp32.tflite", "litert") as lite:
        outs = lite.run(to_tflite_layout(x))
    assert len(outs) == 2  # both heads, in graph order
    np.testing.assert_allclose(outs[0], y0, atol=1e-4)
    np.testing.assert_allclose(outs[1], y1, atol=1e-4)
    # the .tflite check and the scores cover both outputs (6 values per sample)
    assert res.tier("fp32/litert").extra["agreement"]["max_abs_diff"] < 1e-4
    assert res.tier("int8/litert").score > 80 and res.tier("int8/onnxruntime").score > 80


def test_float_region_and_mixed_steps(tmp_path: Path) -> None:
    from sdk.optimize.quantize import float_region
    from sdk.optimize.sensitivity import _steps

    src = _net(tmp_path / "two.onnx", 13, [1, 1, 12, 12], heads=2)
    # a float conv takes its activation, pooling and flatten along, up to the next weighted layers
    assert float_region(src, ["conv"]) == ["conv", "relu", "gap", "flat"]
    assert float_region(src, ["fc1"]) == ["fc1"]
    assert _steps(3) == [0, 1, 2, 3]
    long = _steps(113)
    assert long[:5] == [0, 1, 2, 3, 4] and long[-1] == 113 and len(long) < 16 and long == sorted(set(long))
    fine = _steps(113, measured=16)  # one at a time through the layers a scan measured
    assert fine[:17] == list(range(17)) and fine[17] == 24 and fine[-1] == 113


def test_int8_mixed_litert_keeps_the_chosen_layers_float(tmp_path: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from sdk.optimize.data import Dataset
    from sdk.optimize.tiers import tflite_builder

    src = _net(tmp_path / "one.onnx", 13, [1, 1, 12, 12])
    info = tflite_builder(src, Dataset(_x(8)), None, ["conv"])(tmp_path / "m.tflite")
    assert info["excluded_nodes"] == ["conv"]
    ops = Interpreter(model_path=str(tmp_path / "m.tflite"))._get_ops_details()
    assert next(o for o in ops if o["op_name"] == "CONV_2D")["operand_types"][0] == np.float32
    assert next(o for o in ops if o["op_name"] == "FULLY_CONNECTED")["operand_types"][0] == np.int8
