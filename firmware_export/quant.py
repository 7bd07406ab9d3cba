"""Export-time integer parameters, computed exactly as TFLite's kernels compute them in Prepare.

Scales are the float32 values stored in the model; products and quotients are taken in double,
as ``tflite::QuantizeMultiplier`` and ``PopulateConvolutionQuantizationParams`` do.
"""

from __future__ import annotations

import math

import numpy as np

from sdk.errors import ExportError


def tflite_round(x: float) -> int:
    """std::round: halves away from zero."""
    return math.floor(abs(x) + 0.5) * (1 if x >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """tflite::QuantizeMultiplier: (Q31 significand, power-of-two exponent)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = tflite_round(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    if shift > 30:  # TFLite clamps as well: the multiplier saturates
        shift, q_fixed = 30, (1 << 31) - 1
    return int(q_fixed), int(shift)


def per_channel_multipliers(input_scale: float, filter_scales: np.ndarray, output_scale: float,
                            channels: int) -> tuple[list[int], list[int]]:
    """PopulateConvolutionQuantizationParams: one (multiplier, shift) per output channel."""
    mults, shifts = [], []
    for c in range(channels):
        fs = float(filter_scales[c] if len(filter_scales) > 1 else filter_scales[0])
        m, s = quantize_multiplier(float(input_scale) * fs / float(output_scale))
        mults.append(m)
        shifts.append(s)
    return mults, shifts


def activation_range(act: int, scale: float, zero_point: int, bits: int = 8) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 (or int16, ``bits=16``): act 0 none, 1 RELU,
    2 RELU_N1_TO_1, 3 RELU6."""
    def q(f: float) -> int:
        return zero_point + tflite_round(float(np.float32(f) / np.float32(scale)))

    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if act == 1:
        lo = max(lo, q(0.0))
    elif act == 3:
        lo, hi = max(lo, q(0.0)), min(hi, q(6.0))
    elif act == 2:
        lo, hi = max(lo, q(-1.0)), min(hi, q(1.0))
    elif act != 0:
        raise ExportError(f"fused activation {act} is not supported (NONE, RELU, RELU_N1_TO_1 or RELU6)")
    return lo, hi


def add_params(s1: float, s2: float, s_out: float) -> dict[str, int]:
    """Prepare of int8 ADD (left_shift 20, inputs rescaled to twice the larger input scale)."""
    left_shift = 20
    twice_max = float(2 * max(np.float32(s1), np.float32(s2)))
    m1, sh1 = quantize_multiplier(float(s1) / twice_max)
    m2, sh2 = quantize_multiplier(float(s2) / twice_max)
    mo, sho = quantize_multiplier(twice_max / float(np.float32(1 << left_shift) * np.float32(s_out)))
    return {"left_shift": left_shift, "m1": m1, "s1": sh1, "m2": m2, "s2": sh2, "mo": mo, "so": sho}


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """PreprocessSoftmaxScaling + CalculateInputRadius (kScaledDiffIntegerBits = 5).

    Returns (input_multiplier, input_left_shift, diff_min)."""
    bits = 5
    real = min(float(beta) * float(input_scale) * (1 << (31 - bits)), float((1 << 31) - 1))
    mult, shift = quantize_multiplier(real)
    radius = math.floor(1.0 * ((1 << bits) - 1) * (1 << (31 - bits)) / (1 << shift))
    return mult, shift, -int(radius)


def round_half_away(prod: np.ndarray) -> np.ndarray:
    """std::round of float64 values (halves away from zero), exactly (no ``prod + 0.5`` rounding)."""
    mag = np.abs(prod)
    fl = np.floor(mag)
    r = fl + ((mag - fl) >= 0.5)
    return (np.sign(prod) * r).astype(np.int64)


def fc_fixed_point(scales: np.ndarray, zp: int, lo: int, hi: int) -> tuple[list[int], int] | None:
    """An integer form of LiteRT's FULLY_CONNECTED rescale ``round(acc * scale)`` (float64): per channel
    ``q < 2^32`` and a shift ``k`` (33..63) such that ``sign(acc) * ((|acc| * q + 2^(k-1)) >> k) + zp``
    clamped to [lo, hi] equals LiteRT's output for EVERY int32 accumulator. Checked exhaustively over
    each channel's unsaturated range (both forms are non-decreasing in ``acc``, so beyond it both
    saturate alike); None when no shift passes. On a Cortex-M it is one UMULL, an add and a shift."""
    scales = np.asarray(scales, np.float64)
    if not np.all((scales > 0) & (scales < 1)):
        return None
    ranges = [(int(np.floor((lo - zp - 2) / s)), int(np.ceil((hi - zp + 2) / s))) for s in scales]
    for k in range(63, 32, -1):
        q = [round(float(s) * 2.0 ** k) for s in scales]
        if max(q) >= 2 ** 32:
            continue
        if all(_fixed_matches(a0, a1, s, qc, k, zp, lo, hi) for (a0, a1), s, qc in zip(ranges, scales, q)):
            return q, k
    return None


def _fixed_matches(a0: int, a1: int, scale: float, q: int, k: int, zp: int, lo: int, hi: int) -> bool:
    acc = np.arange(max(a0, -(2 ** 31)), min(a1, 2 ** 31 - 1) + 1, dtype=np.int64)
    want = np.clip(round_half_away(acc * np.float64(scale)) + zp, lo, hi)
    mag = ((np.abs(acc).astype(object) * q + (1 << (k - 1))) >> k).astype(np.int64)  # exact: up to 64 bits
    got = np.clip(np.where(acc < 0, -mag, mag) + zp, lo, hi)
    return bool(np.array_equal(want, got))


def mbqm(x: np.ndarray, mult: int, shift: int) -> np.ndarray:
    """MultiplyByQuantizedMultiplier on an int64 array (values within int32), as ember_nn.c/CMSIS-NN do."""
    x = np.asarray(x, np.int64) * (1 << max(shift, 0))
    ab = x * mult
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    high = np.where(s >= 0, s >> 31, -((-s) >> 31))  # C division truncates toward zero
    right = max(-shift, 0)
    if right == 0:
        return high
    mask = (1 << right) - 1
    rem, threshold = high & mask, (mask >> 1) + (high < 0)
    return (high >> right) + (rem > threshold)
