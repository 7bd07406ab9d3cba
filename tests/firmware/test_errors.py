"""Bad input gives a clear ExportError and leaves nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

import firmware_export
from sdk.errors import ExportError


def _no_leftovers(parent: Path, out: Path) -> None:
    assert not out.exists()
    assert not [p for p in parent.iterdir() if p.name.startswith(f".{out.name}.")]


def test_unsupported_op_is_named(tmp_path, int8_models, fw_models):
    tfl = fw_models.insert_unary(int8_models["tiny_convnet"], tmp_path / "elu.tflite", [("ELU", 0.05, -10, {})])
    out = tmp_path / "out"
    with pytest.raises(ExportError, match="not supported by the C exporter: ELU"):
        firmware_export.export(tfl, out)
    _no_leftovers(tmp_path, out)


def test_float_model_offers_the_fix(tmp_path):
    from sdk.models.builtin import tiny_convnet
    from sdk.optimize.tflite_export import onnx_to_tflite

    tfl = onnx_to_tflite(tiny_convnet(tmp_path / "f.onnx", input_hw=(8, 8), channels=(4,)), tmp_path / "f.tflite")
    with pytest.raises(ExportError, match=r"not a full-integer int8 model.*ember optimize.*int8=True"):
        firmware_export.export(tfl, tmp_path / "out")
    _no_leftovers(tmp_path, tmp_path / "out")


def _with_signature(raw: bytes, sig_of: object) -> bytes:
    """The model with every activation tensor's shape_signature set to ``sig_of(shape)``."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(raw, 0))
    for t in m.subgraphs[0].tensors:
        if m.buffers[t.buffer].data is None and t.shape is not None and len(t.shape):
            t.shapeSignature = sig_of(list(t.shape))  # type: ignore[operator]
    b = flatbuffers.Builder(0)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_batch_minus_one_is_static_other_dynamic_dims_rejected(tmp_path, int8_models):
    """Keras-converted models carry shape_signature -1 x ... with shape 1 x ...: static for export (as
    TFLite Micro treats it). A -1 anywhere else still gets the clear error, and nothing is written."""
    raw = int8_models["tiny_convnet"].read_bytes()
    batch = _with_signature(raw, lambda shape: [-1] + shape[1:])
    res = firmware_export.export(batch, tmp_path / "batch", name="b")
    plain = firmware_export.export(raw, tmp_path / "plain", name="b")
    assert (res.out_dir / "src" / "b.c").read_text() == (plain.out_dir / "src" / "b.c").read_text()
    height = _with_signature(raw, lambda shape: shape[:1] + [-1] + shape[2:] if len(shape) == 4 else shape)
    with pytest.raises(ExportError, match=r"dynamic shapes .*a -1 batch of 1 is fine.*fixed sizes"):
        firmware_export.export(height, tmp_path / "out")
    _no_leftovers(tmp_path, tmp_path / "out")


def test_too_large_for_target(tmp_path, fw_models):
    from sdk.models.builtin import tiny_convnet

    onnx_path = tiny_convnet(tmp_path / "big.onnx", input_hw=(64, 64), channels=(16, 32, 64))
    tfl = fw_models.to_int8(onnx_path, tmp_path / "big.tflite", [1, 3, 64, 64])
    out = tmp_path / "out"
    with pytest.raises(ExportError, match=r"does not fit cortex-m0plus: .*RAM .*larger --target"):
        firmware_export.export(tfl, out, target="cortex-m0plus")
    _no_leftovers(tmp_path, out)
    assert firmware_export.export(tfl, out, target="cortex-m7").arena_bytes > 32 * 1024


@pytest.mark.parametrize("name", ["1model", "my-model", "int", "", "a b"])
def test_bad_c_name(tmp_path, int8_models, name):
    with pytest.raises(ExportError, match="not a valid C identifier"):
        firmware_export.export(int8_models["tiny_convnet"], tmp_path / "out", name=name)
    _no_leftovers(tmp_path, tmp_path / "out")


def test_unknown_target_and_non_empty_out(tmp_path, int8_models):
    with pytest.raises(ExportError, match="unknown target 'avr'"):
        firmware_export.export(int8_models["tiny_convnet"], tmp_path / "o", target="avr")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        firmware_export.export(int8_models["tiny_convnet"], tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_not_a_tflite(tmp_path):
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"hello world, not a flatbuffer")
    with pytest.raises(ExportError, match="not a TFLite flatbuffer"):
        firmware_export.export(bad, tmp_path / "out")


def test_cli_reports_errors_cleanly(tmp_path, int8_models, capsys):
    from sdk.cli import main

    assert main(["export-c", str(int8_models["tiny_convnet"]), "--out", str(tmp_path / "o"),
                 "--name", "9lives"]) == 2
    assert "not a valid C identifier" in capsys.readouterr().err
