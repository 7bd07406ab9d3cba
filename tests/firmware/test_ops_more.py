"""Data-movement operators and TRANSPOSE_CONV on hand-built int8 models (``tflite_builder``): odd sizes,
negative indices and strides, masks, every resize mode, stride/padding/per-channel combinations;
bit-exact with LiteRT's reference kernels on gcc and clang (-Wall -Wextra -Werror), and under qemu."""

from __future__ import annotations

import numpy as np
import pytest

import firmware_export
from firmware_export import oracle
from firmware_export.tflite_builder import Builder
from sdk.errors import ExportError

Q = {"scale": 0.05, "zp": 3}


def movement_model(path):
    """SPLIT in 3, CONCATENATION of the parts reordered (one twice), STRIDED_SLICE with a negative
    begin and stride, SPLIT_V, SLICE, CONCATENATION along H, then RESIZE_NEAREST_NEIGHBOR three times
    (plain, align_corners, half_pixel_centers)."""
    b = Builder()
    x = b.tensor([1, 7, 9, 6], **Q)
    parts = b.op("SPLIT", [b.const(3), x], [b.tensor([1, 7, 9, 2], **Q) for _ in range(3)], numSplits=3)
    cat = b.op("CONCATENATION", [parts[2], parts[0], parts[1], parts[0]], [b.tensor([1, 7, 9, 8], **Q)], axis=3)[0]
    sl = b.op("STRIDED_SLICE", [cat, b.const([0, 1, -1, 1]), b.const([1, 7, 0, 8]), b.const([1, 2, -2, 3])],
              [b.tensor([1, 3, 4, 3], **Q)])[0]
    top, rest = b.op("SPLIT_V", [sl, b.const([1, -1]), b.const(1)], [b.tensor([1, 1, 4, 3], **Q),
                                                                       b.tensor([1, 2, 4, 3], **Q)], numSplits=2)
    mid = b.op("SLICE", [rest, b.const([0, 1, 1, 0]), b.const([-1, 1, 3, -1])], [b.tensor([1, 1, 3, 3], **Q)])[0]
    top3 = b.op("STRIDED_SLICE", [top, b.const([0, 0, 1, 0]), b.const([0, 0, 4, 0]), b.const([1, 1, 1, 1])],
                [b.tensor([1, 1, 3, 3], **Q)], beginMask=0b1011, endMask=0b1011)[0]
    both = b.op("CONCATENATION", [mid, top3, mid], [b.tensor([1, 3, 3, 3], **Q)], axis=-3)[0]
    y = both
    for hw, align, half in (((5, 7), False, False), ((4, 9), True, False), ((7, 6), False, True)):
        y = b.op("RESIZE_NEAREST_NEIGHBOR", [y, b.const(hw)], [b.tensor([1, *hw, 3], **Q)],
                 alignCorners=align, halfPixelCenters=half)[0]
    return b.save(path, [x], [y])


def tconv_model(path, in_hw=(5, 6), cin=3, cout=4, k=(3, 3), stride=(2, 2), same=True, out_hw=None,
                bias=True, seed=0):
    """TRANSPOSE_CONV with per-channel int8 weights [cout, kh, kw, cin], optional bias."""
    rng = np.random.default_rng(seed)
    b = Builder()
    x = b.tensor([1, *in_hw, cin], scale=0.04, zp=-7)
    if out_hw is None:
        out_hw = tuple(i * s if same else (i - 1) * s + kk for i, s, kk in zip(in_hw, stride, k))
    wscale = list(rng.uniform(0.005, 0.02, cout))
    w = b.const(rng.integers(-127, 128, (cout, *k, cin)), np.int8, scale=wscale, zp=[0] * cout, axis=0)
    ins = [b.const([1, *out_hw, cout]), w, x]
    if bias:
        ins.append(b.const(rng.integers(-2000, 2000, cout), np.int32, scale=[0.04 * s for s in wscale], zp=[0] * cout))
    y = b.op("TRANSPOSE_CONV", ins, [b.tensor([1, *out_hw, cout], scale=0.09, zp=5)], padding=0 if same else 1,
             strideH=stride[0], strideW=stride[1])[0]
    return b.save(path, [x], [y])


def _exact(model, out, name, bit_exact, qemu=False):
    res = firmware_export.export(model, out, name=name, measure=False)
    bit_exact(res.out_dir, model, n=25, seed=4, qemu=qemu)
    return res


def test_split_concat_slices_resize_bit_exact(tmp_path, bit_exact):
    model = movement_model(tmp_path / "m.tflite")
    res = _exact(model, tmp_path / "out", "mov", bit_exact, qemu=True)
    ops = [ly["op"] for ly in res.layers]
    assert ops.count("SPLIT") == 3 and ops.count("CONCATENATION") == 7 and ops[-3:] == ["RESIZE_NEAREST_NEIGHBOR"] * 3
    x = np.random.default_rng(1).integers(-128, 128, (1, 7 * 9 * 6)).astype(np.int8)
    assert len(np.unique(oracle.litert_outputs(model.read_bytes(), x)[0])) > 12  # 27 source values: data really moves


@pytest.mark.parametrize("kw", [{}, {"same": False, "stride": (2, 3), "k": (3, 2), "bias": False, "in_hw": (4, 7)},
                                {"stride": (3, 2), "k": (2, 5), "out_hw": (14, 11), "cout": 5}])
def test_transpose_conv_bit_exact(tmp_path, kw, bit_exact):
    model = tconv_model(tmp_path / "t.tflite", **kw)
    res = _exact(model, tmp_path / "out", "tconv", bit_exact, qemu=not kw)
    assert [ly["kernel"] for ly in res.layers] == ["ember_transpose_conv"]
    if not kw:
        x = np.random.default_rng(2).integers(-128, 128, (1, 5 * 6 * 3)).astype(np.int8)
        y = oracle.litert_outputs(model.read_bytes(), x)[0]
        assert 5 < len(np.unique(y)) and (np.abs(y.astype(int)) < 127).mean() > 0.5  # not saturated


def test_concatenation_with_a_constant_part(tmp_path, need):
    """A constant operand of CONCATENATION becomes a flash array (never an unfilled arena buffer)."""
    b = Builder()
    x = b.tensor([1, 3, 5, 2], **Q)
    k = b.const(np.arange(-12, 18).reshape(1, 3, 5, 2), np.int8, **Q)
    y = b.op("CONCATENATION", [k, x, k], [b.tensor([1, 3, 5, 6], **Q)], axis=3)[0]
    model = b.save(tmp_path / "k.tflite", [x], [y])
    res = firmware_export.export(model, tmp_path / "out", name="kc", measure=False)
    need("gcc")
    r = firmware_export.verify_host(res.out_dir, model, n=20, cc="gcc", seed=4)
    assert r["max_abs_diff"] == 0 and r["mismatched_inputs"] == 0, r


def test_requantizing_concatenation_is_a_clear_error(tmp_path):
    b = Builder()
    x = b.tensor([1, 4, 2], **Q)
    other = b.tensor([1, 4, 4], scale=0.1, zp=0)
    b.op("CONCATENATION", [x, x], [other], axis=2)
    y = b.op("CONCATENATION", [x, x], [b.tensor([1, 4, 4], **Q)], axis=2)[0]
    b.save(tmp_path / "c.tflite", [x], [y])
    with pytest.raises(ExportError, match="CONCATENATION with different input/output quantization"):
        firmware_export.export(tmp_path / "c.tflite", tmp_path / "out", measure=False)
