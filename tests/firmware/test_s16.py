"""16x8 models (int16 activations, int8 weights, int64 bias: the scheme audio models use): CONV_2D,
DEPTHWISE_CONV_2D and FULLY_CONNECTED bit-exact with LiteRT's reference kernels, int16 in and out."""

from __future__ import annotations

import numpy as np
import pytest

import firmware_export
from firmware_export import oracle
from firmware_export.tflite_builder import Builder
from sdk.errors import ExportError


def model16(path, seed=0, act=1, per_channel_fc=False, zp=0):
    """int16 [1, 9, 7, 3] -> CONV_2D 3x3 stride 2 SAME (+ReLU) -> DEPTHWISE_CONV_2D 3x3 VALID, multiplier 2
    -> RESHAPE -> FULLY_CONNECTED (per-tensor or per-channel) -> int16 [1, 6]; per-channel conv weights."""
    rng = np.random.default_rng(seed)
    b = Builder()
    sx, s1, s2, s3 = 0.0008, 0.004, 0.006, 0.02
    x = b.tensor([1, 9, 7, 3], np.int16, scale=sx, zp=zp)
    ws = list(rng.uniform(0.004, 0.01, 5))
    w = b.const(rng.integers(-127, 128, (5, 3, 3, 3)), np.int8, scale=ws, zp=[0] * 5, axis=0)
    bias = b.const(rng.integers(-30000, 30000, 5), np.int64, scale=[sx * s for s in ws], zp=[0] * 5)
    y = b.op("CONV_2D", [x, w, bias], [b.tensor([1, 5, 4, 5], np.int16, scale=s1, zp=0)], padding=0, strideH=2,
             strideW=2, fusedActivationFunction=act, dilationHFactor=1, dilationWFactor=1)[0]
    ws2 = list(rng.uniform(0.004, 0.01, 10))
    w2 = b.const(rng.integers(-127, 128, (1, 3, 3, 10)), np.int8, scale=ws2, zp=[0] * 10, axis=3)
    b2 = b.const(rng.integers(-9000, 9000, 10), np.int64, scale=[s1 * s for s in ws2], zp=[0] * 10)
    y = b.op("DEPTHWISE_CONV_2D", [y, w2, b2], [b.tensor([1, 3, 2, 10], np.int16, scale=s2, zp=0)], padding=1,
             strideH=1, strideW=1, depthMultiplier=2, dilationHFactor=1, dilationWFactor=1)[0]
    flat = b.op("RESHAPE", [y, b.const([1, 60])], [b.tensor([1, 60], np.int16, scale=s2, zp=0)])[0]
    ws3 = list(rng.uniform(0.004, 0.01, 6)) if per_channel_fc else 0.006
    zps = [0] * 6 if per_channel_fc else 0
    w3 = b.const(rng.integers(-127, 128, (6, 60)), np.int8, scale=ws3, zp=zps)
    b3 = b.const(rng.integers(-5000, 5000, 6), np.int64, scale=np.multiply(s2, ws3).tolist(), zp=zps)
    y = b.op("FULLY_CONNECTED", [flat, w3, b3], [b.tensor([1, 6], np.int16, scale=s3, zp=0)])[0]
    return b.save(path, [x], [y])


@pytest.mark.parametrize("act, per_channel_fc", [(1, False), (0, True)])
def test_16x8_conv_depthwise_fc_bit_exact(tmp_path, act, per_channel_fc, bit_exact):
    model = model16(tmp_path / "m.tflite", act=act, per_channel_fc=per_channel_fc)
    res = firmware_export.export(model, tmp_path / "out", name="s16", measure=False)
    assert [ly["kernel"] for ly in res.layers] == ["ember_conv2d_s16", "ember_conv2d_s16", "ember_fully_connected_s16"]
    assert "int s16_invoke(const int16_t *input, int16_t *output);" in (res.out_dir / "src" / "s16.h").read_text()
    y = oracle.litert_outputs(model.read_bytes(), oracle.seeded_inputs(20, 9 * 7 * 3, 1, "int16"))
    assert y.dtype == np.int16 and (np.abs(y.astype(int)) < 32767).mean() > 0.9 and len(np.unique(y)) > 50
    bit_exact(res.out_dir, model, n=300, seed=2, qemu=bool(act))


def test_16x8_with_a_zero_point_is_a_clear_error(tmp_path):
    model = model16(tmp_path / "z.tflite", zp=3)
    with pytest.raises(ExportError, match="int16.*zero point"):
        firmware_export.export(model, tmp_path / "out", measure=False)
