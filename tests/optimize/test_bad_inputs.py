"""Bad input gets a clear error; a tier that cannot handle an op is recorded, the others go on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sdk.cli import main
from sdk.errors import ModelError
from sdk.optimize import optimize


def _model_with(op: str, path: Path) -> Path:
    """conv → <op> → global-avg-pool → flatten → gemm, random weights."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 1, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "fc")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node(op, ["c"], ["a"], name="odd"),
             helper.make_node("GlobalAveragePool", ["a"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1, name="fc")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


@pytest.fixture()
def sin_model(tmp_path: Path) -> Path:
    return _model_with("Sin", tmp_path / "sin.onnx")


def _data(n: int = 20, shape: tuple[int, ...] = (1, 8, 8)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.random((n, *shape), dtype=np.float32), rng.integers(0, 3, n)


def test_unsupported_op_fails_only_the_litert_tiers(sin_model: Path, tmp_path: Path) -> None:
    x, y = _data()
    res = optimize(sin_model, x, (x, y), tmp_path / "out", device="t",
                   tiers=["fp32/onnxruntime", "int8/onnxruntime", "fp32/litert", "int8/litert"])
    assert res.tier("int8/onnxruntime").status == "ok"
    for key in ("fp32/litert", "int8/litert"):
        t = res.tier(key)
        assert t.status == "failed" and "Sin" in t.reason and "odd" in t.reason
    assert "Sin" in (tmp_path / "out" / "report.md").read_text()
    assert not list((tmp_path / "out").glob("*.tflite"))


def test_calibration_of_the_wrong_shape(sin_model: Path, tmp_path: Path) -> None:
    x, y = _data()
    with pytest.raises(ModelError, match=r"shape \(3, 8, 8\).*\(1, 1, 8, 8\)"):
        optimize(sin_model, np.zeros((4, 3, 8, 8), np.float32), (x, y), tmp_path / "o")


def test_empty_eval_set(sin_model: Path, tmp_path: Path) -> None:
    x, _ = _data()
    with pytest.raises(ModelError, match="empty"):
        optimize(sin_model, x, (np.zeros((0, 1, 8, 8), np.float32), np.zeros(0)), tmp_path / "o")


def test_missing_model_and_unknown_tier(sin_model: Path, tmp_path: Path) -> None:
    x, y = _data()
    with pytest.raises(ModelError, match="nope.onnx"):
        optimize(tmp_path / "nope.onnx", x, (x, y), tmp_path / "o")
    with pytest.raises(ModelError, match="unknown tier"):
        optimize(sin_model, x, (x, y), tmp_path / "o", tiers=["int4/onnxruntime"])


def test_dynamic_int8_is_built_for_a_gemm_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((32, 16)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal((4, 32)).astype(np.float32), "w2")]
    nodes = [helper.make_node("Gemm", ["x", "w1"], ["h"], transB=1, name="fc1"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Gemm", ["r", "w2"], ["y"], transB=1, name="fc2")]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "mlp.onnx")
    x = rng.random((30, 16), dtype=np.float32)
    res = optimize(tmp_path / "mlp.onnx", x, (x, rng.integers(0, 4, 30)), tmp_path / "out", device="t",
                   tiers=["fp32/onnxruntime", "int8-dynamic/onnxruntime", "fp32/litert"], report=False)
    assert res.tier("int8-dynamic/onnxruntime").status == "ok"
    ops = {n.op_type for n in onnx.load(str(tmp_path / "out" / "model.int8-dynamic.onnx")).graph.node}
    assert ops & {"DynamicQuantizeLinear", "MatMulInteger"}
    assert res.tier("fp32/litert").extra["agreement"]["max_abs_diff"] < 1e-4


def test_cli_reports_bad_data_cleanly(sin_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    x, _ = _data()
    np.savez(tmp_path / "cal.npz", x=x)
    np.savez(tmp_path / "bad.npz", z=x)
    rc = main(["optimize", str(sin_model), "--calib", str(tmp_path / "cal.npz"), "--eval",
               str(tmp_path / "bad.npz"), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "no array 'x'" in capsys.readouterr().err
    assert main(["optimize", str(sin_model)]) == 2
    assert "--calib" in capsys.readouterr().err
