"""Integer building blocks of the KWS front end, vectorised over frames (int64 numpy).

Every function here has a line-for-line twin in ``firmware_export/frontend/ember_kws_frontend.c``;
rounding is always ``(v + 2**(s-1)) >> s`` (arithmetic shift, i.e. round half up) unless it says floor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WINDOW_BITS = 15  # window coefficients: Q15 int16
TWIDDLE_BITS = 15  # FFT twiddles: Q15 int16 (1.0 stored as 32767)
FFT_FRAC_BITS = 6  # windowed samples enter the FFT with 6 fractional bits
POWER_SHIFT = 2 * FFT_FRAC_BITS  # power spectrum back to pcm^2 units
MEL_WEIGHT_BITS = 12  # filterbank weights: Q12 (4096 = 1.0)
LOG_FRAC_BITS = 16  # log2 results: Q16
LOG_LUT_BITS = 6  # log2(1 + i/64), i = 0..64, interpolated linearly
GAIN_SHIFT = LOG_FRAC_BITS + 4  # output = (log2_q16 * gain_q4) >> 20, gain_q4 = steps per octave * 16


def q15(values: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(np.asarray(values, np.float64) * 32768.0 + 0.5), -32768, 32767).astype(np.int16)


def hann_window(n: int) -> np.ndarray:
    """Periodic-offset Hann (TFLite Micro's): 0.5 - 0.5 cos(2 pi (i + 0.5) / n), Q15."""
    return q15(0.5 - 0.5 * np.cos(2.0 * np.pi * (np.arange(n) + 0.5) / n))


def twiddles(fft_size: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of 2 pi k / fft_size for k < fft_size / 2, Q15; W_k = cos - i sin."""
    ang = 2.0 * np.pi * np.arange(fft_size // 2) / fft_size
    return q15(np.cos(ang)), q15(np.sin(ang))


def bit_reverse(n: int) -> np.ndarray:
    bits = n.bit_length() - 1
    idx = np.arange(n)
    rev = np.zeros(n, np.int64)
    for b in range(bits):
        rev |= ((idx >> b) & 1) << (bits - 1 - b)
    return rev


def round_shift(v: np.ndarray, s: int) -> np.ndarray:
    return (v + (1 << (s - 1))) >> s


def window_frames(frames: np.ndarray, window: np.ndarray) -> np.ndarray:
    """int16 frames [F, N] times the Q15 window -> int64 samples with FFT_FRAC_BITS fractional bits."""
    return round_shift(frames.astype(np.int64) * window.astype(np.int64), WINDOW_BITS - FFT_FRAC_BITS)


@dataclass(frozen=True)
class FftPlan:
    size: int
    bit_reverse: np.ndarray  # input permutation
    stages: list[tuple[int, np.ndarray, np.ndarray]]  # (half, cos, sin) per radix-2 stage, int64


def fft_plan(fft_size: int, cos_t: np.ndarray, sin_t: np.ndarray) -> FftPlan:
    stages, half = [], 1
    while half < fft_size:
        step = fft_size // (2 * half)
        stages.append((half, cos_t[::step][:half].astype(np.int64), sin_t[::step][:half].astype(np.int64)))
        half *= 2
    return FftPlan(fft_size, bit_reverse(fft_size), stages)


def fft_power(x: np.ndarray, plan: FftPlan) -> np.ndarray:
    """Radix-2 decimation-in-time FFT of real rows ``x`` [F, <= size] zero-padded to ``plan.size``;
    returns the power spectrum [F, size/2 + 1] in pcm^2 units (floor). No per-stage scaling: with
    |pcm| <= 2^15, a window <= 1 and 6 fractional bits every value stays below 2^31 (int32 in C).
    Butterfly: t = round((b * W) / 2^15) per component, a' = a + t, b' = a - t."""
    f, n = x.shape[0], plan.size
    padded = np.zeros((f, n), np.int64)
    padded[:, : x.shape[1]] = x
    re = padded[:, plan.bit_reverse]
    im = np.zeros_like(re)
    rnd = 1 << (TWIDDLE_BITS - 1)
    for half, c, s in plan.stages:
        re4, im4 = re.reshape(f, -1, 2, half), im.reshape(f, -1, 2, half)
        ar, br = re4[:, :, 0, :], re4[:, :, 1, :]
        ai, bi = im4[:, :, 0, :], im4[:, :, 1, :]
        tr = br * c
        tr += bi * s
        tr += rnd
        tr >>= TWIDDLE_BITS
        ti = bi * c
        ti -= br * s
        ti += rnd
        ti >>= TWIDDLE_BITS
        np.subtract(ar, tr, out=br)
        ar += tr
        np.subtract(ai, ti, out=bi)
        ai += ti
    nb = n // 2 + 1
    re, im = re[:, :nb], im[:, :nb]
    return (re * re + im * im) >> POWER_SHIFT


def mel_segments(channels: int, fft_size: int, sample_rate: int, lower_hz: float,
                 upper_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """Triangular mel filterbank as (segment, weight) per FFT bin.

    ``channels + 2`` edges equally spaced on the mel scale (1127 ln(1 + f/700)); channel c rises
    from edge c to edge c+1 and falls to edge c+2. A bin in segment j (edge j <= mel < edge j+1)
    adds ``weight`` (Q12) to channel j and ``4096 - weight`` to channel j - 1; segment 255 = unused.
    """
    def mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log1p(np.asarray(f, np.float64) / 700.0)

    edges = np.linspace(mel(lower_hz), mel(upper_hz), channels + 2)
    bins = mel(np.arange(fft_size // 2 + 1) * sample_rate / fft_size)
    seg = np.searchsorted(edges, bins, side="right") - 1
    used = (seg >= 0) & (seg <= channels)
    seg_c = np.clip(seg, 0, channels)
    frac = (bins - edges[seg_c]) / (edges[seg_c + 1] - edges[seg_c])
    weight = np.where(used, np.clip(np.floor(frac * (1 << MEL_WEIGHT_BITS) + 0.5), 0, 1 << MEL_WEIGHT_BITS), 0)
    return np.where(used, seg, 255).astype(np.uint8), weight.astype(np.uint16)


def mel_matrix(seg: np.ndarray, weight: np.ndarray, channels: int) -> np.ndarray:
    """Dense int64 [bins, channels] form of ``mel_segments`` (for the vectorised reference)."""
    acc = np.zeros((len(seg), channels + 2), np.int64)
    for k, (j, w) in enumerate(zip(seg.tolist(), weight.tolist())):
        if j != 255:
            acc[k, j + 1] += w
            acc[k, j] += (1 << MEL_WEIGHT_BITS) - w
    return acc[:, 1:-1]


def log2_lut() -> np.ndarray:
    i = np.arange((1 << LOG_LUT_BITS) + 1)
    return np.floor(np.log2(1.0 + i / (1 << LOG_LUT_BITS)) * (1 << LOG_FRAC_BITS) + 0.5).astype(np.int32)


def msb(v: np.ndarray) -> np.ndarray:
    """Index of the highest set bit of positive int64 values (binary search, as in C)."""
    v = v.copy()
    m = np.zeros(v.shape, np.int64)
    for s in (32, 16, 8, 4, 2, 1):
        big = (v >> s) != 0
        m += np.where(big, s, 0)
        v = np.where(big, v >> s, v)
    return m


def log2_q16(v: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """log2(v) in Q16 for int64 v >= 1: exponent from the msb, mantissa's top 16 bits (floor) through a
    65-entry table with linear interpolation (10-bit remainder, rounded)."""
    m = msb(v)
    up = np.clip(LOG_FRAC_BITS - m, 0, None)
    down = np.clip(m - LOG_FRAC_BITS, 0, None)
    frac = ((v << up) >> down) - (1 << LOG_FRAC_BITS)
    rbits = LOG_FRAC_BITS - LOG_LUT_BITS
    i = frac >> rbits
    r = frac & ((1 << rbits) - 1)
    lo = lut.astype(np.int64)[i]
    hi = lut.astype(np.int64)[i + 1]
    return (m << LOG_FRAC_BITS) + lo + round_shift((hi - lo) * r, rbits)
