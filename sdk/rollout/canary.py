"""Canary groups and regression checks for ``ember fleet deploy``.

    canaries = pick_canaries(devices, "10%")           # at least one device
    watch = CanaryWatch()                               # feed it every fleet message
    base = watch.summary(canaries, since=t0, version="1.1.0")
    regressions = check(watch.summary(canaries, since=t1, version="1.2.0"), base, Limits(max_p95_ratio=1.5))

A summary is per device: latency p95 (median of the reported p95s), new inference errors, worst
drift state and app metrics (e.g. ``detection_rate``) averaged over the telemetry samples whose
``model_version`` is the one asked for, so the shadow period and other versions never mix in.
Samples are timed by their arrival at the controller, not by the device clocks (which may be off).
"""

from __future__ import annotations

import json
import math
import random
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sdk.errors import ConfigError

DRIFT_ORDER = {"ok": 0, "unknown": 0, "warn": 1, "alert": 2}
MAX_SAMPLES = 2000


def parse_canary(spec: str | float) -> tuple[str, float]:
    """``"10%"`` → ("fraction", 0.1); ``"3"``/3 → ("count", 3); ConfigError otherwise."""
    text = str(spec).strip()
    try:
        if text.endswith("%"):
            value = float(text[:-1]) / 100
            if 0 < value <= 1:
                return "fraction", value
        elif float(text) >= 1 and float(text).is_integer():
            return "count", float(text)
    except ValueError:
        pass
    raise ConfigError(f"--canary {spec!r}: give a share like 10% (0-100 %) or a device count like 2")


def pick_canaries(devices: Sequence[str], spec: str | float = "10%", seed: int | None = None) -> list[str]:
    """The canary group: a share or count of ``devices`` (at least one, never all when more than one),
    the first in sorted order, or a random sample with ``seed``."""
    if not devices:
        raise ConfigError("no devices to deploy to: check --fleet, --devices, and that devices have connected")
    kind, value = parse_canary(spec)
    n = math.ceil(value * len(devices)) if kind == "fraction" else int(value)
    n = max(1, min(n, len(devices) - 1 if len(devices) > 1 else 1))
    pool = sorted(devices)
    return sorted(random.Random(seed).sample(pool, n)) if seed is not None else pool[:n]


@dataclass
class Limits:
    """What counts as a regression of a canary during the soak, against its own baseline."""

    max_errors: int = 0                 # new inference errors per device
    max_p95_ratio: float = 1.5          # soak p95 / baseline p95
    max_p95_ms: float | None = None     # and/or an absolute p95 ceiling
    max_drift: str = "alert"            # a drift state at or above this is a regression ("warn", "alert", "off")
    min_metric_ratio: dict[str, float] = field(default_factory=dict)   # e.g. {"detection_rate": 0.8}
    max_metric_ratio: dict[str, float] = field(default_factory=dict)
    min_samples: int = 2                # telemetry samples needed per device to judge

    def __post_init__(self) -> None:
        if self.max_drift not in ("warn", "alert", "off"):
            raise ConfigError(f"max_drift {self.max_drift!r}: use warn, alert or off")
        if self.max_p95_ratio <= 0 or self.max_errors < 0 or self.min_samples < 1:
            raise ConfigError("limits: max_p95_ratio must be > 0, max_errors >= 0, min_samples >= 1")

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class Sample:
    ts: float
    version: str | None
    p95: float | None
    errors: int
    drift: int
    metrics: dict[str, float]


class CanaryWatch:
    """Keeps each device's recent telemetry samples (thread-safe): ``feed(topic, payload)``."""

    def __init__(self) -> None:
        self.samples: dict[str, list[Sample]] = {}
        self._lock = threading.Lock()

    def feed(self, topic: str, payload: bytes, now: float | None = None) -> None:
        """Keep a telemetry message, stamped with its arrival time (``now``): device clocks may be off."""
        parts = topic.split("/")
        if len(parts) != 4 or parts[3] != "telemetry":
            return
        try:
            b = json.loads(payload)
            drift = max((DRIFT_ORDER.get(s, 0) for s in (b.get("drift_state") or {}).values()), default=0)
            metrics = {k: float(v) for k, v in (b.get("metrics") or {}).items() if isinstance(v, (int, float))}
            s = Sample(time.time() if now is None else now, b.get("model_version"), b.get("latency_p95_ms"),
                       int(b.get("errors") or 0), drift, metrics)
        except (ValueError, TypeError, AttributeError):
            return
        with self._lock:
            lst = self.samples.setdefault(parts[2], [])
            lst.append(s)
            del lst[:-MAX_SAMPLES]

    def summary(self, devices: Sequence[str], since: float, version: str | None) -> dict[str, dict[str, Any]]:
        """Per device: ``n``, ``p95_ms``, ``errors`` (new during the window), ``drift``, ``metrics``."""
        out = {}
        with self._lock:
            for dev in devices:
                all_s = self.samples.get(dev, [])
                s = [x for x in all_s if x.ts >= since and (version is None or x.version == version)]
                before = [x.errors for x in all_s if x.ts < since]
                p95s = [x.p95 for x in s if x.p95 is not None]
                names = {k for x in s for k in x.metrics}
                out[dev] = {"n": len(s), "p95_ms": statistics.median(p95s) if p95s else None,
                            "errors": (max(x.errors for x in s) - (before[-1] if before else min(x.errors for x in s)))
                            if s else 0,
                            "drift": max((x.drift for x in s), default=0),
                            "metrics": {k: statistics.fmean(x.metrics[k] for x in s if k in x.metrics) for k in names}}
        return out


def check(soak: dict[str, dict[str, Any]], baseline: dict[str, dict[str, Any]], limits: Limits,
          final: bool = False) -> list[str]:
    """Regressions (one line each, naming device, measure, value and limit); [] when all is well.
    A device with fewer than ``limits.min_samples`` soak samples is not judged yet, and is a
    regression at the ``final`` check (silent after promotion: crashed, hung or offline)."""
    problems = []
    for dev, cur in soak.items():
        if cur["n"] < limits.min_samples:
            if final:
                problems.append(f"{dev}: {cur['n']} telemetry samples on the new version during the soak "
                                f"(at least {limits.min_samples} needed): silent, crashed or offline?")
            continue
        base = baseline.get(dev, {})
        if cur["errors"] > limits.max_errors:
            problems.append(f"{dev}: {cur['errors']} inference errors (limit {limits.max_errors})")
        p95, b95 = cur["p95_ms"], base.get("p95_ms")
        if p95 is not None and b95 and p95 / b95 > limits.max_p95_ratio:
            problems.append(f"{dev}: latency p95 {p95:.2f} ms is {p95 / b95:.2f}x the baseline {b95:.2f} ms "
                            f"(limit {limits.max_p95_ratio:g}x)")
        if p95 is not None and limits.max_p95_ms is not None and p95 > limits.max_p95_ms:
            problems.append(f"{dev}: latency p95 {p95:.2f} ms over {limits.max_p95_ms:g} ms")
        if limits.max_drift != "off" and cur["drift"] >= DRIFT_ORDER[limits.max_drift] > base.get("drift", 0):
            problems.append(f"{dev}: input/output drift reached {limits.max_drift}")
        for name, ratio in limits.min_metric_ratio.items():
            problems += _ratio(dev, name, cur, base, ratio, low=True)
        for name, ratio in limits.max_metric_ratio.items():
            problems += _ratio(dev, name, cur, base, ratio, low=False)
    return problems


def _ratio(dev: str, name: str, cur: dict[str, Any], base: dict[str, Any], ratio: float, low: bool) -> list[str]:
    v, b = cur["metrics"].get(name), (base.get("metrics") or {}).get(name)
    if v is None or not b:
        return []
    r = v / b
    if (low and r < ratio) or (not low and r > ratio):
        return [f"{dev}: {name} {v:.3g} is {r:.2f}x the baseline {b:.3g} (limit {'≥' if low else '≤'} {ratio:g}x)"]
    return []
