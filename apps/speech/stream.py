"""Streaming decisions: incremental front end, energy gate, posterior smoothing, threshold, refractory.

Pure numpy; the model is any callable ``features uint8 [49, 40] -> class probabilities``, so this
logic is tested on synthetic posteriors and reused by the spotter, the evaluator and the enroller.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sdk.errors import ConfigError
from sdk.features.kws import KwsFrontend


@dataclass(frozen=True)
class Detection:
    keyword: str
    time_s: float  # end of the window in which the smoothed posterior crossed the threshold
    confidence: float  # smoothed posterior of the keyword


@dataclass
class StreamSettings:
    """Streaming parameters (defaults chosen on the select split, stored in the model's speech.json)."""

    threshold: float = 0.7  # smoothed posterior needed for a detection
    smooth: int = 3  # windows averaged
    refractory_s: float = 1.0  # no second detection this soon after one
    hop_ms: float = 200.0  # window step (a multiple of the front end's 20 ms stride)
    gate: float = 0.0  # skip the model when the loudest frame's mean feature is below this (0 = off)

    def check(self) -> StreamSettings:
        problems = []
        if not 0.0 < self.threshold <= 1.0:
            problems.append(f"threshold={self.threshold} (need 0 < t <= 1)")
        if self.smooth < 1:
            problems.append(f"smooth={self.smooth} (need >= 1)")
        if self.refractory_s < 0:
            problems.append(f"refractory_s={self.refractory_s} (need >= 0)")
        if not 20 <= self.hop_ms <= 1000:
            problems.append(f"hop_ms={self.hop_ms} (need 20..1000)")
        if not 0 <= self.gate <= 255:
            problems.append(f"gate={self.gate} (need 0..255)")
        if problems:
            raise ConfigError("speech stream: bad " + "; ".join(problems))
        return self


class Smoother:
    """Average the last ``smooth`` posteriors; report a keyword above ``threshold`` outside the refractory time."""

    def __init__(self, labels: Sequence[str], keywords: Sequence[str], settings: StreamSettings) -> None:
        self.labels, self.settings = list(labels), settings
        self.keys = [labels.index(k) for k in keywords]
        self.history: deque[np.ndarray] = deque(maxlen=settings.smooth)
        self.last_s = -np.inf

    def reset(self) -> None:
        self.history.clear()
        self.last_s = -np.inf

    def push(self, probs: np.ndarray | None, time_s: float) -> Detection | None:
        """Add one window's posteriors (None: a gated window, counted as 'nothing') and decide."""
        self.history.append(np.zeros(len(self.labels), np.float32) if probs is None else np.asarray(probs, np.float32))
        mean = np.sum(self.history, axis=0) / self.settings.smooth  # missing windows count as nothing
        best = max(self.keys, key=lambda i: mean[i])
        if mean[best] < self.settings.threshold or time_s - self.last_s < self.settings.refractory_s:
            return None
        self.last_s = time_s
        return Detection(self.labels[best], round(time_s, 3), float(mean[best]))


@dataclass
class Windower:
    """Feed audio of any chunk size; yields (end time s, uint8 features [49, 40]) every ``hop`` frames."""

    frontend: KwsFrontend
    frames: int = 49
    hop_frames: int = 10
    _pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    _feats: deque = field(default_factory=deque)
    _done: int = 0  # frames computed so far
    _since: int = 0  # frames since the last window

    def push(self, pcm: np.ndarray) -> list[tuple[float, np.ndarray]]:
        fe = self.frontend
        self._pending = np.concatenate([self._pending, pcm])
        n = fe.frames_for(len(self._pending))
        out = []
        if n:
            feats = fe(self._pending[:fe.samples_for(n)])
            self._pending = self._pending[n * fe.stride:]
            for row in feats:
                self._feats.append(row)
                if len(self._feats) > self.frames:
                    self._feats.popleft()
                self._done += 1
                self._since += 1
                if len(self._feats) == self.frames and (self._since >= self.hop_frames or self._done == self.frames):
                    self._since = 0
                    end = ((self._done - 1) * fe.stride + fe.window) / fe.sample_rate
                    out.append((end, np.stack(self._feats)))
        return out


def loudness(feats: np.ndarray) -> float:
    """The loudest frame's mean feature value (uint8 units, ~5 per octave of energy)."""
    return float(np.asarray(feats, np.float32).mean(axis=1).max())


def as_int16(chunk: np.ndarray) -> np.ndarray:
    """Mono int16 from int16 or float (-1..1) audio, [n] or [n, channels] (channels averaged)."""
    x = np.asarray(chunk)
    if x.ndim == 2:
        x = x.mean(axis=1) if x.dtype.kind == "f" else x.astype(np.float64).mean(axis=1).round().astype(np.int16)
    if x.ndim != 1:
        raise ConfigError(f"audio chunk must be [samples] or [samples, channels], got shape {x.shape}")
    if x.dtype == np.int16:
        return x
    if x.dtype.kind == "f":
        return KwsFrontend.from_float(x)
    raise ConfigError(f"audio chunk must be int16 or float in -1..1, got {x.dtype}")
