"""Drift of a live window against the reference profile: PSI and KS per continuous feature,
chi-square (and PSI) for class frequencies; per-feature states ok / warn / alert with
``drift.state`` events on every transition."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sdk.errors import TelemetryError
from sdk.events import EventBus
from sdk.telemetry.profile import ReferenceProfile
from sdk.telemetry.stats import WindowStats

STATES = ("ok", "warn", "alert")
EPS = 1e-4  # proportion floor so that empty bins give a finite PSI


def psi(ref: np.ndarray, cur: np.ndarray, eps: float = EPS) -> float:
    """Population stability index Σ (q−p)·ln(q/p) between two count vectors of the same bins."""
    p = _proportions(ref, eps)
    q = _proportions(cur, eps)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_binned(ref: np.ndarray, cur: np.ndarray) -> float:
    """Kolmogorov–Smirnov statistic from the binned CDFs (max |F_ref − F_cur| at the bin edges)."""
    a = np.cumsum(ref) / max(float(np.sum(ref)), 1.0)
    b = np.cumsum(cur) / max(float(np.sum(cur)), 1.0)
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def chi_square(ref: np.ndarray, cur: np.ndarray) -> tuple[float, int, float]:
    """Chi-square goodness of fit of the observed class counts ``cur`` to the reference proportions:
    ``(statistic, degrees of freedom, p-value)``; the p-value uses the Wilson–Hilferty approximation."""
    n = max(ref.size, cur.size)
    r = np.zeros(n)
    r[: ref.size] = ref
    c = np.zeros(n)
    c[: cur.size] = cur
    total = c.sum()
    if total <= 0 or r.sum() <= 0:
        return 0.0, 0, 1.0
    expected = _proportions(r, EPS) * total
    stat = float(np.sum((c - expected) ** 2 / expected))
    dof = max(n - 1, 1)
    return stat, dof, _chi2_sf(stat, dof)


def _chi2_sf(x: float, k: int) -> float:
    if x <= 0:
        return 1.0
    z = ((x / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k))
    return 0.5 * math.erfc(z / math.sqrt(2))


def _proportions(counts: np.ndarray, eps: float) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    p = c / max(c.sum(), 1.0)
    p = np.maximum(p, eps)
    return p / p.sum()


@dataclass
class Thresholds:
    """PSI levels for warn and alert; a state drops back only below ``hysteresis`` × its level."""

    psi_warn: float = 0.1
    psi_alert: float = 0.25
    hysteresis: float = 0.8
    min_frames: int = 100

    def validate(self) -> Thresholds:
        if not 0 < self.psi_warn < self.psi_alert:
            raise TelemetryError(f"drift thresholds must satisfy 0 < psi_warn < psi_alert "
                                 f"(got {self.psi_warn}, {self.psi_alert})")
        if not 0 < self.hysteresis <= 1:
            raise TelemetryError(f"drift hysteresis must be in (0, 1] (got {self.hysteresis})")
        return self

    def update(self, **values: Any) -> Thresholds:
        new = Thresholds(**{**self.__dict__, **{k: v for k, v in values.items() if v is not None}})
        return new.validate()


class DriftDetector:
    """Compares windows with ``profile``; keeps the state of each feature and publishes transitions."""

    def __init__(self, profile: ReferenceProfile, thresholds: Thresholds | None = None,
                 bus: EventBus | None = None) -> None:
        self.profile = profile
        base = Thresholds(**{k: v for k, v in profile.thresholds.items() if k in Thresholds.__dataclass_fields__})
        self.thresholds = (thresholds or base).validate()
        self.bus = bus
        self.states: dict[str, str] = {}
        self.last: dict[str, Any] = {}

    def evaluate(self, window: WindowStats) -> dict[str, Any]:
        """Drift report for ``window``: ``{"state", "frames", "features": {name: {psi, ks, state}}}``."""
        features: dict[str, dict[str, Any]] = {}
        names = window.binning.names
        for i, name in enumerate(names):
            ref = self.profile.features.get(name)
            cur = window.counts[i]
            if ref is None or cur.sum() < self.thresholds.min_frames:
                continue
            r = np.asarray(ref["counts"])
            score = psi(r, cur)
            features[name] = {"psi": round(score, 5), "ks": round(ks_binned(r, cur), 5),
                              "state": self._transition(name, score, window.frames)}
        classes = self.profile.classes
        if classes and window.class_counts.sum() >= self.thresholds.min_frames:
            ref_c = np.asarray(classes["counts"])
            cur_c = window.class_counts
            n = max(ref_c.size, cur_c.size)
            rc, cc = np.pad(ref_c, (0, n - ref_c.size)), np.pad(cur_c, (0, n - cur_c.size))
            stat, dof, p = chi_square(rc, cc)
            score = psi(rc, cc)
            features["class"] = {"psi": round(score, 5), "chi2": round(stat, 3), "dof": dof, "p": round(p, 6),
                                 "state": self._transition("class", score, window.frames)}
        emb_ref = self.profile.embedding_mean
        emb_cur = window.embedding_mean()
        if emb_ref is not None and emb_cur is not None and len(emb_ref) == emb_cur.size:
            a, b = np.asarray(emb_ref), emb_cur
            cos = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
            features.setdefault("embedding_norm", {})["mean_cosine_distance"] = round(1.0 - cos, 5)
        overall = max((f.get("state", "ok") for f in features.values()), key=STATES.index, default="ok")
        self.last = {"state": overall, "frames": int(window.frames), "features": features}
        return self.last

    def _transition(self, name: str, score: float, frames: int) -> str:
        t = self.thresholds
        prev = self.states.get(name, "ok")
        if score >= t.psi_alert:
            state = "alert"
        elif score >= t.psi_warn:
            state = "warn" if not (prev == "alert" and score >= t.psi_alert * t.hysteresis) else "alert"
        else:
            state = "ok" if not (prev != "ok" and score >= t.psi_warn * t.hysteresis) else "warn"
        if state != prev:
            self.states[name] = state
            if self.bus is not None:
                self.bus.publish("drift.state", feature=name, state=state, previous=prev,
                                 psi=round(score, 5), frames=int(frames))
        return state
