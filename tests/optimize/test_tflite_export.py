"""The ONNX → .tflite writer: fp32 matches ONNX Runtime, int8 agrees, bad ops are named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from sdk.errors import ExportError
from sdk.optimize.tflite_export import from_tflite_layout, onnx_to_tflite, to_tflite_layout


def _interp(path: Path):  # type: ignore[no-untyped-def]
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    return it


def _run_tflite(it, x: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    xin = to_tflite_layout(x)
    if i["dtype"] == np.int8:
        s, z = i["quantization"]
        xin = np.clip(np.round(xin / s) + z, -128, 127).astype(np.int8)
    it.set_tensor(i["index"], xin)
    it.invoke()
    y = it.get_tensor(o["index"])
    if o["dtype"] == np.int8:
        s, z = o["quantization"]
        y = (y.astype(np.float32) - z) * s
    return from_tflite_layout(y)


def _onnx(path: Path, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]


def test_fp32_tflite_matches_onnxruntime(trained_onnx: Path, bars_data: dict, tmp_path: Path) -> None:
    out = onnx_to_tflite(trained_onnx, tmp_path / "m.tflite")
    it = _interp(out)
    assert tuple(it.get_input_details()[0]["shape"]) == (1, 16, 16, 1)  # NHWC
    for x in bars_data["x_eval"][:20]:
        ref = _onnx(trained_onnx, x[None])
        np.testing.assert_allclose(_run_tflite(it, x[None]), ref, atol=1e-4, rtol=1e-4)


def test_int8_tflite_is_full_integer_and_agrees(trained_onnx: Path, bars_data: dict, tmp_path: Path) -> None:
    out = onnx_to_tflite(trained_onnx, tmp_path / "m.int8.tflite", int8=True, calibration=bars_data["calib"])
    it = _interp(out)
    assert it.get_input_details()[0]["dtype"] == np.int8
    assert it.get_output_details()[0]["dtype"] == np.int8
    weights = [d for d in it.get_tensor_details() if "weights" in d["name"]]
    assert weights and all(d["dtype"] == np.int8 for d in weights)
    conv_w = next(d for d in weights if len(d["shape"]) == 4)
    assert len(conv_w["quantization_parameters"]["scales"]) > 1  # per-channel
    xs = bars_data["x_eval"][:100]
    ref = np.stack([_onnx(trained_onnx, x[None])[0] for x in xs])
    got = np.stack([_run_tflite(it, x[None])[0] for x in xs])
    assert np.mean(ref.argmax(1) == got.argmax(1)) >= 0.9
    assert np.abs(ref - got).mean() < 0.05 * np.abs(ref).max()


def test_1d_conv_model_exports(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 2, 5], rng.standard_normal(40).astype(np.float32))
    dw = helper.make_tensor("dw", TensorProto.FLOAT, [4, 1, 3], rng.standard_normal(12).astype(np.float32))
    fc = helper.make_tensor("fc", TensorProto.FLOAT, [4, 3], rng.standard_normal(12).astype(np.float32))
    b = helper.make_tensor("b", TensorProto.FLOAT, [3], rng.standard_normal(3).astype(np.float32))
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[5], strides=[2], pads=[2, 2], name="c"),
        helper.make_node("Relu", ["c"], ["r"], name="r"),
        helper.make_node("Conv", ["r", "dw"], ["d"], kernel_shape=[3], pads=[1, 1], group=4, name="d"),
        helper.make_node("ReduceMean", ["d"], ["m"], axes=[2], keepdims=0, name="m"),
        helper.make_node("MatMul", ["m", "fc"], ["mm"], name="mm"),
        helper.make_node("Add", ["mm", "b"], ["y"], name="add"),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 40])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [w, dw, fc, b])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    import onnx

    onnx.save(m, tmp_path / "m.onnx")
    it = _interp(onnx_to_tflite(tmp_path / "m.onnx", tmp_path / "m.tflite"))
    x = rng.standard_normal((1, 2, 40)).astype(np.float32)
    np.testing.assert_allclose(_run_tflite(it, x), _onnx(tmp_path / "m.onnx", x), atol=1e-4)


def test_unsupported_op_is_named(tmp_path: Path) -> None:
    import onnx

    g = helper.make_graph([helper.make_node("Sin", ["x"], ["y"], name="weird")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(m, tmp_path / "sin.onnx")
    with pytest.raises(ExportError, match="Sin.*weird"):
        onnx_to_tflite(tmp_path / "sin.onnx", tmp_path / "sin.tflite")


def test_int8_needs_calibration_of_the_right_shape(trained_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="calibration"):
        onnx_to_tflite(trained_onnx, tmp_path / "a.tflite", int8=True)
    with pytest.raises(ExportError, match="shape"):
        onnx_to_tflite(trained_onnx, tmp_path / "b.tflite", int8=True, calibration=[np.zeros((1, 3, 8, 8))])
    with pytest.raises(ExportError, match="empty"):
        onnx_to_tflite(trained_onnx, tmp_path / "c.tflite", int8=True, calibration=[])


def test_int8_with_float_nodes_keeps_those_layers_float(trained_onnx: Path, bars_data: dict, tmp_path: Path) -> None:
    first_conv = next(n.name for n in onnx.load(str(trained_onnx)).graph.node if n.op_type == "Conv")
    out = onnx_to_tflite(trained_onnx, tmp_path / "m.mixed.tflite", int8=True, calibration=bars_data["calib"],
                         float_nodes=[first_conv])
    it = _interp(out)
    ops = it._get_ops_details()
    convs = [op for op in ops if op["op_name"] == "CONV_2D"]
    assert convs[0]["operand_types"][0] == np.float32 and convs[1]["operand_types"][0] == np.int8
    assert {"DEQUANTIZE", "QUANTIZE"} <= {op["op_name"] for op in ops}
    xs = bars_data["x_eval"][:60]
    ref = np.stack([_onnx(trained_onnx, x[None])[0] for x in xs])
    got = np.stack([_run_tflite(it, x[None])[0] for x in xs])
    assert np.mean(ref.argmax(1) == got.argmax(1)) >= 0.9
