"""Streaming sample-rate conversion with numpy only (no scipy).

``Resampler(44100, 16000).process(block)`` may be called with blocks of any size and returns the
output samples that are complete so far; ``flush()`` returns the rest. ``"sinc"`` is a
Kaiser-windowed sinc (polyphase table for rational ratios, anti-aliased when downsampling);
``"linear"`` interpolates linearly (cheap, no anti-aliasing).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MODES = ("sinc", "linear")


class Resampler:
    """Convert ``rate_in`` → ``rate_out`` (integer Hz) for float arrays shaped [samples, channels]."""

    max_table_phases = 4096

    def __init__(self, rate_in: int, rate_out: int, mode: str = "sinc", zero_crossings: int = 16,
                 rolloff: float = 0.95, beta: float = 8.6) -> None:
        if rate_in <= 0 or rate_out <= 0:
            raise ValueError(f"rates must be positive, got {rate_in} → {rate_out}")
        if mode not in MODES:
            raise ValueError(f"unknown resampling mode {mode!r} (choose {' or '.join(MODES)})")
        g = math.gcd(int(rate_in), int(rate_out))
        self.rate_in, self.rate_out = int(rate_in), int(rate_out)
        self.up, self.down = self.rate_out // g, self.rate_in // g
        self.mode, self.beta = mode, beta
        self.cutoff = min(1.0, self.up / self.down) * rolloff
        self.half = 1 if mode == "linear" else math.ceil(zero_crossings / self.cutoff)
        self._table = self._kernel(np.arange(self.up) / self.up) if self.up <= self.max_table_phases else None
        self._buf: np.ndarray | None = None
        self._start = -self.half  # absolute input index of _buf[0] (starts with zero padding)
        self._m = 0               # next output index
        self._total_in = 0

    def _kernel(self, frac: np.ndarray) -> np.ndarray:
        """Tap weights [len(frac), 2*half] for outputs whose position is ``frac`` past an input sample."""
        k = np.arange(2 * self.half)
        d = frac[:, None] + (self.half - 1) - k[None, :]  # distance from each tap, in input samples
        if self.mode == "linear":
            return np.clip(1.0 - np.abs(d), 0.0, None).astype(np.float32)
        x = np.clip(d / self.half, -1.0, 1.0)
        window = np.i0(self.beta * np.sqrt(1.0 - x * x)) / np.i0(self.beta)
        return (self.cutoff * np.sinc(self.cutoff * d) * window).astype(np.float32)

    def _produce(self, m_end: int) -> np.ndarray:
        assert self._buf is not None
        channels = self._buf.shape[1]
        if m_end <= self._m:
            return np.zeros((0, channels), np.float32)
        m = np.arange(self._m, m_end, dtype=np.int64)
        base = (m * self.down) // self.up
        phase = (m * self.down) % self.up
        weights = self._table[phase] if self._table is not None else self._kernel(phase / self.up)
        windows = sliding_window_view(self._buf, 2 * self.half, axis=0)  # [n, channels, taps], a view
        out = np.einsum("mk,mck->mc", weights, windows[base - self._start - self.half + 1]).astype(np.float32)
        self._m = m_end
        keep_from = min((self._m * self.down) // self.up - self.half + 1 - self._start, len(self._buf))
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._start += keep_from
        return out

    def process(self, block: np.ndarray) -> np.ndarray:
        """Feed input samples [n, channels]; returns the output samples complete so far."""
        block = np.asarray(block, dtype=np.float32)
        if block.ndim == 1:
            block = block[:, None]
        if self.up == self.down:
            self._total_in += len(block)
            return block
        if self._buf is None:
            self._buf = np.zeros((self.half, block.shape[1]), np.float32)
        self._buf = np.concatenate([self._buf, block])
        self._total_in += len(block)
        last_full = self._start + len(self._buf) - 1 - self.half  # newest base with all right taps
        m_end = ((last_full + 1) * self.up - 1) // self.down + 1 if last_full >= 0 else 0
        return self._produce(max(m_end, self._m))

    def flush(self) -> np.ndarray:
        """The remaining output after the last input (the input is taken as zero past its end)."""
        if self.up == self.down or self._buf is None:
            return np.zeros((0, 1 if self._buf is None else self._buf.shape[1]), np.float32)
        self._buf = np.concatenate([self._buf, np.zeros((self.half + 1, self._buf.shape[1]), np.float32)])
        return self._produce(-(-self._total_in * self.up // self.down))


def resample(signal: np.ndarray, rate_in: int, rate_out: int, mode: str = "sinc") -> np.ndarray:
    """Resample a whole signal ([n] or [n, channels]); the output keeps the input's dimensionality."""
    r = Resampler(rate_in, rate_out, mode)
    x = np.asarray(signal, np.float32)
    out = np.concatenate([r.process(x), r.flush()])
    return out[:, 0] if x.ndim == 1 else out
