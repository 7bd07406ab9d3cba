"""Damaged .tflite files (as a fuzzer or an attacker writes them): `ember export-c`, the LiteRT backend and
`ember profile` end with a typed one-line error, never a traceback from inside a library or a crash."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import firmware_export
from sdk.cli import main
from sdk.errors import BackendError, ExportError
from sdk.runtime.backends import load_backend


def _edit(src: Path, dst: Path, fn: Callable) -> Path:
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(src.read_bytes(), 0))
    fn(m, m.subgraphs[0])
    b = flatbuffers.Builder(0)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    dst.write_bytes(bytes(b.Output()))
    return dst


def _quantized(sg, n=0):
    return [t for t in sg.tensors if t.quantization is not None and t.quantization.scale is not None][n]


def _op(m, sg, code):
    from ai_edge_litert import schema_py_generated as s

    want = getattr(s.BuiltinOperator, code)
    return next(o for o in sg.operators if m.operatorCodes[o.opcodeIndex].builtinCode == want)


def _fc_without_weights(m, sg) -> None:
    op = _op(m, sg, "FULLY_CONNECTED")
    op.inputs = [op.inputs[0], -1, *op.inputs[2:]]


def _short_weights(m, sg) -> None:
    buf = m.buffers[sg.tensors[_op(m, sg, "FULLY_CONNECTED").inputs[1]].buffer]
    buf.data = buf.data[:-3]


EDITS = {
    "huge_zero_point": (lambda m, sg: setattr(_quantized(sg).quantization, "zeroPoint", [144115188075855921]),
                        r"zero point\(s\) \[144115188075855921\] outside \[-128, 127\]"),
    "zero_scale": (lambda m, sg: setattr(_quantized(sg).quantization, "scale", [0.0]), "must be finite"),
    "nan_scale": (lambda m, sg: setattr(_quantized(sg).quantization, "scale", [float("nan")]),
                  "must be finite"),
    "scales_without_zero_points": (lambda m, sg: setattr(_quantized(sg).quantization, "zeroPoint", [0, 0, 0]),
                                   "zero points for"),
    "buffer_out_of_range": (lambda m, sg: setattr(sg.tensors[1], "buffer", 1_000_000), "uses buffer 1000000"),
    "op_input_out_of_range": (lambda m, sg: setattr(sg.operators[0], "inputs", [0, 999, -7]),
                              "refers to tensor 999"),
    "fc_without_weights": (_fc_without_weights, r"FULLY_CONNECTED\) lacks a required input"),
    "opcode_out_of_range": (lambda m, sg: setattr(sg.operators[0], "opcodeIndex", 77), "operator code 77"),
    "no_subgraph_outputs_in_range": (lambda m, sg: setattr(sg, "outputs", [12345]), "refers to tensor 12345"),
    "weights_shorter_than_shape": (_short_weights, "buffer holds"),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_damaged_model_is_an_export_error_naming_the_problem(tmp_path, int8_models, edit: str) -> None:
    fn, match = EDITS[edit]
    bad = _edit(int8_models["tiny_convnet"], tmp_path / f"{edit}.tflite", fn)
    with pytest.raises(ExportError, match=match) as e:
        firmware_export.export(bad, tmp_path / "out", measure=False)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_unsupported_fused_activation_is_an_export_error(tmp_path, int8_models) -> None:
    bad = _edit(int8_models["tiny_convnet"], tmp_path / "act.tflite",
                lambda m, sg: setattr(_op(m, sg, "CONV_2D").builtinOptions, "fusedActivationFunction", 5))
    with pytest.raises(ExportError, match="fused activation 5 is not supported"):
        firmware_export.export(bad, tmp_path / "out", measure=False)


def test_inconsistent_shapes_name_the_op(tmp_path, int8_models) -> None:
    bad = _edit(int8_models["tiny_convnet"], tmp_path / "shape.tflite",
                lambda m, sg: setattr(sg.tensors[_op(m, sg, "CONV_2D").inputs[1]], "shape", []))
    with pytest.raises(ExportError, match=r"op \d+ \(CONV_2D\)|inconsistent|buffer holds"):
        firmware_export.export(bad, tmp_path / "out", measure=False)


def test_litert_refuses_what_would_crash_it(tmp_path, int8_models) -> None:
    """FULLY_CONNECTED without weights makes LiteRT's allocate_tensors segfault: checked before it loads."""
    bad = _edit(int8_models["tiny_convnet"], tmp_path / "fc.tflite", _fc_without_weights)
    with pytest.raises(BackendError, match="lacks a required input"):
        load_backend(bad, "litert")


def test_litert_undecodable_tensor_name_is_a_backend_error(tmp_path, int8_models) -> None:
    bad = _edit(int8_models["tiny_convnet"], tmp_path / "name.tflite",
                lambda m, sg: setattr(sg.tensors[sg.inputs[0]], "name", b"\xff\xfe\xc3"))
    with pytest.raises(BackendError, match="litert cannot load it"):
        load_backend(bad, "litert")


def test_profile_of_an_empty_or_inputless_model_is_one_line(tmp_path, capsys) -> None:
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert main(["profile", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "empty" in err and len(err.strip().splitlines()) == 1

    import onnx
    from onnx import TensorProto, helper

    c = helper.make_node("Constant", [], ["y"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]))
    g = helper.make_graph([c], "noinput", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "noinput.onnx"))
    assert main(["profile", str(tmp_path / "noinput.onnx")]) == 2
    assert "no inputs" in capsys.readouterr().err


def test_litert_refuses_a_type_mismatch_that_overruns_a_buffer(tmp_path, int8_models) -> None:
    """An int16 input to an int8 RESHAPE made LiteRT corrupt its heap (abort): checked before it loads."""
    def int16_input(m, sg) -> None:
        sg.tensors[sg.inputs[0]].type = 7  # INT16
    bad = _edit(int8_models["conv1d"], tmp_path / "int16.tflite", int16_input)
    with pytest.raises(BackendError, match="must be the same"):
        load_backend(bad, "litert")
    with pytest.raises(ExportError):
        firmware_export.export(bad, tmp_path / "out", measure=False)
