"""Shadow test: run a candidate model beside the active one on a fraction of live inputs and decide whether
to promote it.

    shadow = ShadowTest(active, candidate, fraction=0.1,
                        criteria=ShadowCriteria(min_agreement=0.95, max_p95_ms=20, max_errors=0, min_frames=200))
    stage = Stage("infer", shadow)      # serves the ACTIVE model's outputs; the candidate only shadows it
    ...
    shadow.decision()                   # "pending" until min_frames shadowed, then "promote" or "reject"
    shadow.report()                     # agreement, candidate (and active) latency p50/p95, errors, drift

``active``/``candidate``: anything with ``run(x)`` (a ``LoadedVariant``, see ``load_model``) or a callable
(a ``ModelManager``). Frames are picked evenly (every 1/fraction-th); with ``budget_ms`` a frame is not
shadowed when the active run plus the candidate's p50 would exceed it. An exception in the candidate is
counted, never raised. Agreement is top-1 of the first output by default (``agree(a_out, c_out) -> bool``
for anything else); output drift is the PSI between the two models' top-1 class histograms
(``sdk.telemetry.drift.psi``) and the mean absolute difference of the first outputs. When the decision
leaves ``pending`` a ``rollout.shadow`` event (decision, reasons, agreement, latency, errors, drift,
``deployment``) goes to ``emit`` (default: the event bus).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdk.models.store import LoadedVariant, ModelStore
from sdk.rollout.common import Emit, emitter
from sdk.telemetry.drift import psi
from sdk.util.timing import percentiles


@dataclass
class ShadowCriteria:
    """Promotion needs ``min_frames`` shadowed frames, agreement ≥ ``min_agreement``, candidate p95 ≤
    ``max_p95_ms`` (when set), at most ``max_errors`` errors and top-1 PSI ≤ ``max_drift`` (when set)."""

    min_agreement: float = 0.95
    max_p95_ms: float | None = None
    max_errors: int = 0
    min_frames: int = 200
    max_drift: float | None = None


def first_output(out: Any) -> np.ndarray:
    return np.asarray(out[0] if isinstance(out, (list, tuple)) else out)


def top1_agree(a_out: Any, c_out: Any) -> bool:
    """Same arg-max of the first output (per row for a batch)."""
    a, c = first_output(a_out), first_output(c_out)
    return a.shape == c.shape and bool(np.all(a.reshape(a.shape[0] if a.ndim > 1 else 1, -1).argmax(-1)
                                             == c.reshape(c.shape[0] if c.ndim > 1 else 1, -1).argmax(-1)))


def load_model(folder: str | Path, tier: str | None = None, backend: str | None = None) -> LoadedVariant:
    """Load a model folder's variant (``tier``/``backend``, default: its first usable one), warmed up."""
    store = ModelStore(folder)
    usable = [v for v in store.usable() if (tier is None or v.tier == tier) and (backend is None or v.backend == backend)]
    if not usable:
        from sdk.errors import ModelError

        raise ModelError(f"{folder}: no usable variant {tier or '*'}/{backend or '*'} to shadow-test")
    return store.load(usable[0])


def _call(model: Any) -> Callable[[Any], Any]:
    return model.run if hasattr(model, "run") else model


class ShadowTest:
    def __init__(self, active: Any, candidate: Any, *, fraction: float = 0.1, criteria: ShadowCriteria | None = None,
                 agree: Callable[[Any, Any], bool] = top1_agree, budget_ms: float | None = None,
                 clock: Callable[[], float] = time.perf_counter, emit: Emit | None = None,
                 deployment: str | None = None) -> None:
        if not 0.0 < fraction <= 1.0:
            from sdk.errors import ConfigError

            raise ConfigError(f"shadow fraction {fraction} must be in (0, 1]")
        self.active, self.candidate = _call(active), _call(candidate)
        self.fraction, self.criteria, self.agree = fraction, criteria or ShadowCriteria(), agree
        self.budget_ms, self.clock = budget_ms, clock
        self.offered = self.frames = self.agreed = self.errors = self.skipped_budget = 0
        self.last_error: str | None = None
        self.cand_ms: deque[float] = deque(maxlen=10_000)
        self.active_ms: deque[float] = deque(maxlen=10_000)
        self.classes: dict[str, Counter[int]] = {"active": Counter(), "candidate": Counter()}
        self._abs_diff = 0.0
        self._credit = 0.0
        self.emit, self.deployment, self.decided = emitter(emit), deployment, False

    def __call__(self, x: Any) -> Any:
        """Run the active model on ``x`` (its output is returned) and shadow the candidate when picked."""
        t0 = self.clock()
        out = self.active(x)
        self.observe(x, out, (self.clock() - t0) * 1e3)
        return out

    def observe(self, x: Any, active_out: Any, active_ms: float | None = None) -> bool:
        """Offer one frame and the active model's output; True when the candidate ran on it."""
        self.offered += 1
        if active_ms is not None:
            self.active_ms.append(active_ms)
        self._credit += self.fraction
        if self._credit < 1.0 - 1e-9:
            return False
        self._credit -= 1.0
        if self.budget_ms is not None and active_ms is not None and self.cand_ms and \
                active_ms + percentiles(self.cand_ms, 50)[0] > self.budget_ms:
            self.skipped_budget += 1
            return False
        t0 = self.clock()
        try:
            c_out = self.candidate(x)
            ms = (self.clock() - t0) * 1e3
            same = bool(self.agree(active_out, c_out))
            a, c = first_output(active_out), first_output(c_out)
        except Exception as e:  # noqa: BLE001 - a failing candidate is a finding, never a crash of the app
            self.errors += 1
            self.last_error = f"{type(e).__name__}: {str(e)[:160]}"
            self._announce()
            return True
        self.cand_ms.append(ms)
        self.frames += 1
        self.agreed += same
        self.classes["active"][int(a.argmax())] += 1
        self.classes["candidate"][int(c.argmax())] += 1
        if a.shape == c.shape:
            self._abs_diff += float(np.mean(np.abs(a.astype(np.float64) - c.astype(np.float64))))
        self._announce()
        return True

    def _announce(self) -> None:
        """Publish ``rollout.shadow`` once, when the decision leaves ``pending``."""
        if self.decided or self._decide()[0] == "pending":
            return
        r = self.report()
        self.decided = True
        keys = ("decision", "reasons", "frames", "agreement", "errors", "candidate_p50_ms", "candidate_p95_ms",
                "drift_psi")
        self.emit("rollout.shadow", deployment=self.deployment, **{k: r[k] for k in keys})

    def drift(self) -> float | None:
        """PSI between the active and candidate top-1 class histograms (None before any frame)."""
        if not self.frames:
            return None
        bins = max(max(self.classes["active"]), max(self.classes["candidate"])) + 1
        hist = [np.array([self.classes[k][i] for i in range(bins)], np.float64) for k in ("active", "candidate")]
        return psi(hist[0], hist[1])

    def report(self) -> dict[str, Any]:
        c50, c95 = percentiles(self.cand_ms, 50, 95) if self.cand_ms else (None, None)
        a50, a95 = percentiles(self.active_ms, 50, 95) if self.active_ms else (None, None)
        decision, reasons = self._decide()
        return {"decision": decision, "reasons": reasons, "offered": self.offered, "frames": self.frames,
                "skipped_budget": self.skipped_budget, "agreement": self.agreed / self.frames if self.frames else None,
                "errors": self.errors, "last_error": self.last_error,
                "candidate_p50_ms": c50, "candidate_p95_ms": c95, "active_p50_ms": a50, "active_p95_ms": a95,
                "drift_psi": self.drift(), "mean_abs_diff": self._abs_diff / self.frames if self.frames else None,
                "criteria": asdict(self.criteria)}

    def decision(self) -> str:
        """``"reject"`` as soon as errors exceed the limit; ``"pending"`` before ``min_frames``; then
        ``"promote"`` if every criterion holds, else ``"reject"``."""
        return self._decide()[0]

    def _decide(self) -> tuple[str, list[str]]:
        cr = self.criteria
        if self.errors > cr.max_errors:
            return "reject", [f"{self.errors} candidate errors > {cr.max_errors} ({self.last_error})"]
        if self.frames < cr.min_frames:
            return "pending", [f"{self.frames} of {cr.min_frames} frames shadowed"]
        reasons = []
        agreement = self.agreed / self.frames
        if agreement < cr.min_agreement:
            reasons.append(f"agreement {agreement:.3f} < {cr.min_agreement}")
        p95 = percentiles(self.cand_ms, 95)[0]
        if cr.max_p95_ms is not None and p95 > cr.max_p95_ms:
            reasons.append(f"candidate p95 {p95:.2f} ms > {cr.max_p95_ms} ms")
        drift = self.drift()
        if cr.max_drift is not None and drift is not None and drift > cr.max_drift:
            reasons.append(f"output drift PSI {drift:.3f} > {cr.max_drift}")
        return ("reject", reasons) if reasons else ("promote", [])
