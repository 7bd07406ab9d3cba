"""Signal quality of a single ECG lead, one state per second (judged on the last ``WINDOW_S`` seconds).

States: ``good``; ``wander`` (strong baseline wander, still usable); ``noisy`` (muscle/motion
noise: beats unreliable); ``flat`` (no signal: a disconnected or dead lead); ``saturated`` (the
amplifier sits at a rail for much of the window); ``lead_off`` (NaN samples or the front end's
lead-off flag). Only ``good`` and ``wander`` are usable: in the others alerts are held back and beats
are reported as ``Q`` (unclassifiable); a lead-off is never reported as asystole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apps.health.frontend import RATE

WINDOW_S = 2
USABLE = ("good", "wander")
FLAT_MV = 0.03           # peak-to-peak below this over the window: flat
RAIL_FRACTION = 0.25     # samples stuck at the window's extreme value
WANDER_MV = 1.5          # range of the 0.5-s means over the window
NOISE_MV = 0.12          # RMS-equivalent mean |residual| after a 5-sample moving average (muscle noise)
MIN_KURTOSIS = 4.0       # QRS complexes make the 10-Hz high-passed ECG peaky; noise is not


@dataclass(frozen=True)
class QualityState:
    start: int           # first sample of the second judged
    state: str
    noise_mv: float
    wander_mv: float

    @property
    def usable(self) -> bool:
        return self.state in USABLE


def judge(x: np.ndarray) -> tuple[str, float, float]:
    """(state, noise mV, wander mV) of a window ``x`` (mV, at RATE)."""
    if len(x) == 0 or np.isnan(x).mean() > 0.1:
        return "lead_off", 0.0, 0.0
    x = np.nan_to_num(x)
    p2p = float(x.max() - x.min())
    if p2p < FLAT_MV:
        return "flat", 0.0, 0.0
    at_rail = max(np.mean(x >= x.max() - 1e-6), np.mean(x <= x.min() + 1e-6))
    if at_rail > RAIL_FRACTION:
        return "saturated", 0.0, 0.0
    half = RATE // 2
    means = x[:len(x) // half * half].reshape(-1, half).mean(axis=1)
    wander = float(means.max() - means.min()) if len(means) else 0.0
    c = np.concatenate([[0.0], np.cumsum(x, dtype=np.float64)])
    resid = x[2:-2] - (c[5:] - c[:-5]) / 5                     # minus a 5-sample moving average
    noise = float(1.2533 * np.abs(resid - resid.mean()).mean())
    hp = x[18:-18] - (c[36:] - c[:-36])[:len(x) - 36] / 36     # minus a 0.1-s moving average
    m = hp - hp.mean()
    kurtosis = float(np.mean(m ** 4) / max(np.mean(m ** 2) ** 2, 1e-12))
    if noise > NOISE_MV or kurtosis < MIN_KURTOSIS:
        return "noisy", noise, wander
    return ("wander" if wander > WANDER_MV else "good"), noise, wander


class QualityMonitor:
    """Feed mV samples at RATE; ``process`` returns a ``QualityState`` for every completed second."""

    def __init__(self) -> None:
        self._buf = np.zeros(0, np.float32)
        self._n = 0          # samples seen
        self.state: QualityState | None = None

    def process(self, x: np.ndarray, lead_off: bool = False) -> list[QualityState]:
        out = []
        self._buf = np.concatenate([self._buf, np.asarray(x, np.float32).ravel()])
        keep = WINDOW_S * RATE
        while len(self._buf) >= keep:
            start = self._n
            state, noise, wander = ("lead_off", 0.0, 0.0) if lead_off else judge(self._buf[:keep])
            self.state = QualityState(start, state, round(noise, 4), round(wander, 4))
            out.append(self.state)
            self._buf = self._buf[RATE:]
            self._n += RATE
        return out

    def usable_at(self, sample: int) -> bool:
        """Whether the state covering ``sample`` (the latest judged) is usable; True before any."""
        return self.state is None or self.state.usable
