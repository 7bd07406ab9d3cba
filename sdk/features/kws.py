"""Keyword-spotting audio front end: 16 kHz int16 PCM -> uint8 log-mel features, integer-only.

The same arithmetic runs in C (``firmware_export/frontend/ember_kws_frontend.c``); both give
identical bytes. Per frame (TFLite Micro micro_speech style, without noise reduction/PCAN):

1. ``window_ms`` of samples every ``stride_ms`` (30/20 ms: 480 samples every 320 -> 49 frames/s);
2. times a Q15 Hann window, rounded to 6 fractional bits;
3. radix-2 FFT (``fft_size`` = next power of two, 512), int32 data, Q15 twiddles, int64 products;
4. power spectrum |X|^2 in pcm^2 units (floor);
5. ``channels`` triangular mel filters between ``lower_hz`` and ``upper_hz``, Q12 weights;
6. log2(E + 1) in Q16 (msb + 65-entry table with linear interpolation);
7. ``round(log2 * steps_per_octave)`` clamped to 0..255 (digital silence -> 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sdk.errors import ConfigError
from sdk.features import fixed_point as fx


@dataclass(frozen=True)
class KwsTables:
    """The constant tables shared by the Python reference and the C header."""

    window: np.ndarray  # int16 [window], Q15
    cos: np.ndarray  # int16 [fft_size / 2], Q15
    sin: np.ndarray  # int16 [fft_size / 2], Q15
    mel_segment: np.ndarray  # uint8 [fft_size / 2 + 1], 255 = bin unused
    mel_weight: np.ndarray  # uint16 [fft_size / 2 + 1], Q12
    log2_lut: np.ndarray  # int32 [65], Q16


class KwsFrontend:
    """Integer log-mel front end for keyword spotting; ``frontend(pcm_int16)`` -> uint8 [frames, channels].

    >>> fe = KwsFrontend()                      # 16 kHz, 30 ms / 20 ms, 40 channels
    >>> feats = fe(np.zeros(16000, np.int16))   # (49, 40), all 0 for digital silence
    >>> x = fe.to_int8(feats)                   # int8 model input (scale, zero point: fe.input_quantization)
    """

    def __init__(self, sample_rate: int = 16000, window_ms: float = 30, stride_ms: float = 20,
                 channels: int = 40, lower_hz: float = 125.0, upper_hz: float = 7500.0,
                 steps_per_octave: float = 5.25) -> None:
        self.sample_rate = int(sample_rate)
        self.window = round(sample_rate * window_ms / 1000)
        self.stride = round(sample_rate * stride_ms / 1000)
        self.channels = int(channels)
        self.lower_hz, self.upper_hz = float(lower_hz), float(upper_hz)
        self.gain_q4 = round(steps_per_octave * 16)
        self._check()
        self.fft_size = 1 << (self.window - 1).bit_length()

    def _check(self) -> None:
        problems = []
        if not 8 <= self.window <= 1024:  # keeps every FFT value below 2^31 and every channel sum below 2^63
            problems.append(f"window of {self.window} samples (need 8..1024)")
        if not 1 <= self.stride <= self.window:
            problems.append(f"stride of {self.stride} samples (need 1..window)")
        if not 1 <= self.channels <= 128:
            problems.append(f"channels={self.channels} (need 1..128)")
        if not 0 <= self.lower_hz < self.upper_hz <= self.sample_rate / 2:
            problems.append(f"band {self.lower_hz}..{self.upper_hz} Hz (need 0 <= lower < upper <= sample_rate/2)")
        if not 1 <= self.gain_q4 <= 512:
            problems.append(f"steps_per_octave={self.gain_q4 / 16} (need 1/16..32)")
        if problems:
            raise ConfigError("KwsFrontend: bad " + "; ".join(problems))

    def __repr__(self) -> str:
        return (f"KwsFrontend(sample_rate={self.sample_rate}, window={self.window}, stride={self.stride}, "
                f"channels={self.channels}, band={self.lower_hz:g}-{self.upper_hz:g} Hz, "
                f"steps_per_octave={self.steps_per_octave:g})")

    @property
    def steps_per_octave(self) -> float:
        return self.gain_q4 / 16

    @cached_property
    def tables(self) -> KwsTables:
        cos_t, sin_t = fx.twiddles(self.fft_size)
        seg, weight = fx.mel_segments(self.channels, self.fft_size, self.sample_rate, self.lower_hz, self.upper_hz)
        return KwsTables(fx.hann_window(self.window), cos_t, sin_t, seg, weight, fx.log2_lut())

    @cached_property
    def _fft(self) -> fx.FftPlan:
        return fx.fft_plan(self.fft_size, self.tables.cos, self.tables.sin)

    @cached_property
    def _mel(self) -> np.ndarray:
        t = self.tables
        return fx.mel_matrix(t.mel_segment, t.mel_weight, self.channels)

    def frames_for(self, n_samples: int) -> int:
        """Number of whole frames in ``n_samples`` samples (0 when shorter than one window)."""
        return 0 if n_samples < self.window else 1 + (n_samples - self.window) // self.stride

    def samples_for(self, frames: int) -> int:
        """Samples needed for ``frames`` frames (16000 for 49 frames at the defaults)."""
        return self.window + (frames - 1) * self.stride

    def __call__(self, pcm: np.ndarray) -> np.ndarray:
        """uint8 features [frames, channels] of mono int16 ``pcm`` (trailing partial frame dropped)."""
        x = np.asarray(pcm)
        if x.ndim != 1 or x.dtype != np.int16:
            raise ConfigError(f"KwsFrontend expects mono int16 PCM (1-D), got {x.dtype} {x.shape}; "
                              "use KwsFrontend.from_float for float audio in -1..1")
        n = self.frames_for(len(x))
        if n == 0:
            return np.zeros((0, self.channels), np.uint8)
        idx = np.arange(n)[:, None] * self.stride + np.arange(self.window)[None, :]
        return self._frames(x[idx])

    def _frames(self, frames: np.ndarray) -> np.ndarray:
        t = self.tables
        win = fx.window_frames(frames, t.window)
        power = fx.fft_power(win, self._fft)
        energy = (power @ self._mel) >> fx.MEL_WEIGHT_BITS
        log = fx.log2_q16(energy + 1, t.log2_lut)
        return np.clip(fx.round_shift(log * self.gain_q4, fx.GAIN_SHIFT), 0, 255).astype(np.uint8)

    @staticmethod
    def from_float(audio: np.ndarray) -> np.ndarray:
        """float audio in -1..1 -> int16: floor(x * 32768 + 0.5) clamped to -32768..32767."""
        a = np.asarray(audio, np.float64)
        if a.ndim != 1:
            raise ConfigError(f"expected mono audio (1-D), got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ConfigError("audio contains NaN or infinity")
        return np.clip(np.floor(a * 32768.0 + 0.5), -32768, 32767).astype(np.int16)

    def features_float(self, audio: np.ndarray) -> np.ndarray:
        """``self(from_float(audio))`` for float32 audio in -1..1."""
        return self(self.from_float(audio))

    @property
    def input_quantization(self) -> tuple[float, int]:
        """(scale, zero_point) under which ``to_int8(features)`` (= features - 128) means log2(E + 1)."""
        return 1.0 / self.steps_per_octave, -128

    def dequantize(self, features: np.ndarray) -> np.ndarray:
        """uint8 features -> float log2(E + 1), E being the mel channel energy in pcm^2 units."""
        return np.asarray(features, np.float32) / np.float32(self.steps_per_octave)

    def int8_lut(self, scale: float | None = None, zero_point: int | None = None) -> np.ndarray:
        """int8 [256]: model input for each feature value, for a model whose input is quantized with
        ``scale``/``zero_point`` (defaults: ``input_quantization``, giving ``feature - 128``):
        clamp(floor(log2 / scale + 0.5) + zero_point). Shipped to C as a table, so both agree exactly."""
        if scale is None or zero_point is None:
            scale, zero_point = self.input_quantization
        if not scale > 0:
            raise ConfigError(f"model input scale must be > 0, got {scale}")
        q = np.floor(np.arange(256) / self.steps_per_octave / scale + 0.5) + int(zero_point)
        return np.clip(q, -128, 127).astype(np.int8)

    def to_int8(self, features: np.ndarray, scale: float | None = None, zero_point: int | None = None) -> np.ndarray:
        """Map uint8 ``features`` to the int8 input of a model quantized with ``scale``/``zero_point``."""
        return self.int8_lut(scale, zero_point)[np.asarray(features, np.uint8)]
