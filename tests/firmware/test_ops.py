"""Operators beyond the MLPerf Tiny set, each bit-exact with LiteRT's reference kernels on a small model
with odd sizes (gcc, clang, and qemu)."""

from __future__ import annotations

import pytest

import firmware_export


@pytest.mark.parametrize("where", [None, 0])
def test_table_activations_bit_exact(fw_models, tmp_path, where, need):
    """LOGISTIC, TANH, HARD_SWISH and LEAKY_RELU (alpha carried over) spliced into a conv net with odd
    sizes, after the input (the whole int8 range) or after a ReLU conv: bit-exact on gcc, clang, qemu."""
    from sdk.models.builtin import tiny_convnet

    need("gcc")
    need("clang")
    onnx_path = tiny_convnet(tmp_path / "t.onnx", input_hw=(9, 11), channels=(6, 8), classes=5)
    base = fw_models.to_int8(onnx_path, tmp_path / "t.tflite", [1, 3, 9, 11])
    ops = [("LEAKY_RELU", 0.05, -20, {"alpha": 0.2}), ("HARD_SWISH", 0.04, -100, {}), ("TANH", 1 / 128, 0, {}),
           ("LOGISTIC", 1 / 256, -128, {})]
    model = fw_models.insert_unary(base, tmp_path / "a.tflite", ops, after=where)
    res = firmware_export.export(model, tmp_path / "out", name="act", measure=False)
    chain = [ly["op"] for ly in res.layers if ly["kernel"] == "ember_lut"]
    assert chain == [o[0] for o in ops]
    for cc in ("gcc", "clang"):
        assert firmware_export.verify_host(res.out_dir, model, n=200, cc=cc, seed=7)["max_abs_diff"] == 0
    if where is None:
        need("arm-none-eabi-gcc")
        need("qemu-system-arm")
        assert firmware_export.verify_qemu(res.out_dir)["ok"]


def test_mul_and_sub_bit_exact(fw_models, tmp_path, need):
    """MUL of two convolutions (same shapes), SUB of a per-channel constant, MUL by a per-channel constant
    (broadcast over the last dimension), through the project's ONNX -> int8 converter."""
    need("gcc")
    need("clang")
    model = fw_models.to_int8(fw_models.mul_sub_net(tmp_path / "ms.onnx"), tmp_path / "ms.tflite", [1, 3, 9, 7])
    res = firmware_export.export(model, tmp_path / "out", name="ms", measure=False)
    assert [ly["op"] for ly in res.layers][2:5] == ["MUL", "SUB", "MUL"]
    for cc in ("gcc", "clang"):
        assert firmware_export.verify_host(res.out_dir, model, n=200, cc=cc, seed=9)["max_abs_diff"] == 0
    need("arm-none-eabi-gcc")
    need("qemu-system-arm")
    assert firmware_export.verify_qemu(res.out_dir)["ok"]
