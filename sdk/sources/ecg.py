"""A realistic synthetic ECG: P-QRS-T Gaussians per beat, heart-rate variability (respiratory
sinus arrhythmia + random), optional premature ventricular (``V``) and atrial (``A``) beats,
baseline wander, mains hum and noise. Seeded and block-size independent: the same seed gives the
same signal however it is read.

    rec = synthetic_ecg(60, rate=360, hr=72, ectopic=0.1, seed=1)
    rec.signal (float32 mV), rec.samples (R-peak indices), rec.symbols ("N", "V", "A")
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# (offset from the R peak in s, amplitude in mV, width in s); T offsets scale with sqrt(RR).
_NORMAL = np.array([[-0.20, 0.12, 0.025], [-0.035, -0.12, 0.010], [0.0, 1.0, 0.011],
                    [0.035, -0.25, 0.012], [0.26, 0.30, 0.045]])
_VENTRICULAR = np.array([[-0.02, -0.15, 0.020], [0.02, 1.35, 0.032], [0.085, -0.55, 0.035],
                         [0.34, -0.45, 0.060]])
_ATRIAL = np.array([[-0.16, -0.08, 0.020], *_NORMAL[1:]])
_SHAPES = {"N": (_NORMAL, 4), "V": (_VENTRICULAR, 3), "A": (_ATRIAL, 4)}  # (waves, index of T)


@dataclass(frozen=True)
class EcgRecord:
    """A generated ECG and its beat annotations (MIT-BIH style symbols)."""

    signal: np.ndarray      # float32 [n], millivolts
    rate: float
    samples: np.ndarray     # int64 R-peak sample indices
    symbols: list[str]      # "N" normal, "V" premature ventricular, "A" premature atrial


class EcgGenerator:
    """Renders an endless ECG in blocks: ``render(n)`` returns the next ``n`` samples."""

    def __init__(self, rate: float = 360.0, hr: float = 72.0, hrv: float = 0.03, ectopic: float = 0.0,
                 atrial: float = 0.0, noise: float = 0.01, wander: float = 0.05, mains: float = 0.0,
                 mains_hz: float = 50.0, seed: int = 0) -> None:
        if not 20 <= hr <= 250:
            raise ValueError(f"hr={hr} is not a heart rate (20 to 250 beats per minute)")
        if not (0 <= ectopic <= 1 and 0 <= atrial <= 1 and ectopic + atrial <= 1):
            raise ValueError("ectopic and atrial are probabilities per beat (sum at most 1)")
        self.rate, self.hr, self.hrv, self.ectopic, self.atrial = float(rate), hr, hrv, ectopic, atrial
        self.noise, self.wander, self.mains, self.mains_hz = noise, wander, mains, mains_hz
        beat_seed, noise_seed, phase_seed = np.random.SeedSequence(seed).spawn(3)
        self._beat_rng = np.random.default_rng(beat_seed)
        self._noise_rng = np.random.default_rng(noise_seed)
        self._phases = np.random.default_rng(phase_seed).uniform(0, 2 * math.pi, 3)
        self._times: list[float] = []
        self._symbols: list[str] = []
        self._next_rr_scale = 1.0
        self._pos = 0

    @property
    def position(self) -> int:
        """Samples rendered so far."""
        return self._pos

    def _schedule_until(self, t_end: float) -> None:
        rr0 = 60.0 / self.hr
        while not self._times or self._times[-1] < t_end:
            t = self._times[-1] if self._times else 0.25 + self._beat_rng.uniform(0, rr0)
            rsa = 1.0 + 0.04 * math.sin(2 * math.pi * 0.25 * t + self._phases[0])
            rr = rr0 * rsa * (1.0 + self.hrv * self._beat_rng.standard_normal()) * self._next_rr_scale
            u = self._beat_rng.uniform()
            symbol, self._next_rr_scale = "N", 1.0
            if self._times and u < self.ectopic:
                symbol, rr, self._next_rr_scale = "V", rr * 0.65, 1.35  # compensatory pause after a PVC
            elif self._times and u < self.ectopic + self.atrial:
                symbol, rr = "A", rr * 0.7
            self._times.append(t + rr if self._times else t)
            self._symbols.append(symbol)

    def render(self, n: int) -> np.ndarray:
        """The next ``n`` samples (float32, mV)."""
        t = (self._pos + np.arange(n)) / self.rate
        t0, t1 = (t[0], t[-1]) if n else (0.0, 0.0)
        self._schedule_until(t1 + 1.0)
        x = np.zeros(n, np.float64)
        rr0 = 60.0 / self.hr
        for i, (tr, sym) in enumerate(zip(self._times, self._symbols)):
            if tr < t0 - 0.8 or tr > t1 + 0.4:
                continue
            waves, t_index = _SHAPES[sym]
            rr = tr - self._times[i - 1] if i else rr0
            offsets = waves[:, 0].copy()
            offsets[t_index] *= math.sqrt(max(rr, 0.3) / rr0)
            d = t[:, None] - tr - offsets[None, :]
            x += (waves[:, 1] * np.exp(-0.5 * (d / waves[:, 2]) ** 2)).sum(axis=1)
        x += self.wander * np.sin(2 * math.pi * 0.2 * t + self._phases[1])
        if self.mains:
            x += self.mains * np.sin(2 * math.pi * self.mains_hz * t + self._phases[2])
        if self.noise:
            x += self.noise * self._noise_rng.standard_normal(n)
        self._pos += n
        return x.astype(np.float32)

    def annotations(self, end: int | None = None) -> tuple[np.ndarray, list[str]]:
        """R-peak sample indices and symbols of the beats before sample ``end`` (default: rendered)."""
        end = self._pos if end is None else end
        samples = np.round(np.asarray(self._times) * self.rate).astype(np.int64)
        keep = samples < end
        return samples[keep], [s for s, k in zip(self._symbols, keep) if k]


def synthetic_ecg(duration_s: float, rate: float = 360.0, hr: float = 72.0, hrv: float = 0.03,
                  ectopic: float = 0.0, atrial: float = 0.0, noise: float = 0.01, wander: float = 0.05,
                  mains: float = 0.0, seed: int = 0) -> EcgRecord:
    """``duration_s`` seconds of ECG with its beat annotations (same as ``synthetic://ecg``)."""
    gen = EcgGenerator(rate, hr, hrv, ectopic, atrial, noise, wander, mains, seed=seed)
    signal = gen.render(round(duration_s * rate))
    samples, symbols = gen.annotations()
    return EcgRecord(signal, float(rate), samples, symbols)
