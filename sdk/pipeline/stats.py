"""Live pipeline statistics: rolling latency percentiles, fps, counters, queue depths.

The hot path only appends a float to a bounded deque (atomic in CPython, no lock);
percentiles are computed when someone reads the statistics.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from sdk.util.timing import percentile, percentiles  # the one percentile (re-exported here)


class RollingWindow:
    """The last ``size`` samples; ``add`` is one deque append, ``percentiles`` sorts a copy."""

    __slots__ = ("_values", "count")

    def __init__(self, size: int = 512) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self.count = 0

    def add(self, value: float) -> None:
        self._values.append(value)
        self.count += 1

    def snapshot(self) -> list[float]:
        while True:
            try:
                return list(self._values)
            except RuntimeError:  # mutated while copying; retry
                continue

    def percentiles(self, *qs: float) -> tuple[float, ...]:
        return percentiles(self.snapshot(), *qs)


class TimedWindow:
    """The last ``size`` ``(time, value)`` samples; percentiles over those taken since a given time
    (the rolling latency of a model manager or a degrader)."""

    __slots__ = ("_samples",)

    def __init__(self, size: int = 512) -> None:
        self._samples: deque[tuple[float, float]] = deque(maxlen=size)

    def add(self, t: float, value: float) -> None:
        self._samples.append((t, value))

    def clear(self) -> None:
        self._samples.clear()

    def percentile(self, q: float, since: float, min_count: int = 3) -> float | None:
        """The ``q``-th percentile (0..100) of the samples at or after ``since``; None with fewer
        than ``min_count`` of them."""
        xs = [v for t, v in self._samples if t >= since]
        return percentile(xs, q) if len(xs) >= min_count else None


class RateMeter:
    """Events per second over the last ``window_s`` seconds (at most ``size`` events kept)."""

    __slots__ = ("_times", "window_s")

    def __init__(self, window_s: float = 5.0, size: int = 4096) -> None:
        self._times: deque[float] = deque(maxlen=size)
        self.window_s = window_s

    def mark(self, t: float) -> None:
        self._times.append(t)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        while True:
            try:
                times = list(self._times)
                break
            except RuntimeError:
                continue
        recent = [t for t in times if now - t <= self.window_s]
        if len(recent) < 2:
            return 0.0
        span = max(now - recent[0], recent[-1] - recent[0])
        return (len(recent) - 1) / span if span > 0 else 0.0


@dataclass
class StageLatency:
    """Latency of one stage over the rolling window (ms) and how many items it has processed."""

    p50_ms: float
    p95_ms: float
    count: int


@dataclass
class PipelineStats:
    """A snapshot of a pipeline. Counters are totals since start; latencies and ``fps`` are rolling.

    After the pipeline has stopped: ``items_in == items_out + sum(dropped) + sum(errors) + discarded``
    (``discarded``: items still queued when ``stop()``/Ctrl-C/an error aborted the run).
    """

    running: bool
    stop_reason: str | None  # None while running; "end", "stop", "interrupt" or "error"
    elapsed_s: float
    items_in: int
    items_out: int
    fps: float  # rolling, over the last few seconds
    fps_overall: float  # items_out / elapsed_s
    latency_p50_ms: float  # end to end: source timestamp -> handed to the sinks
    latency_p95_ms: float
    stages: dict[str, StageLatency] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)  # per queue (named by the stage it feeds)
    errors: dict[str, int] = field(default_factory=dict)  # per stage or "sink:<name>"
    discarded: int = 0
    queue_depths: dict[str, int] = field(default_factory=dict)
    policies: dict[str, str] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)  # the source's own SourceStats

    @property
    def total_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def total_errors(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (NaN latencies, before any item went through, become None)."""
        return _no_nan(asdict(self))

    def summary(self) -> str:
        """One line for a terminal, e.g. for ``ember pipeline run --stats-every``."""
        stages = " ".join(f"{n}={_ms(s.p50_ms)}/{_ms(s.p95_ms)}" for n, s in self.stages.items())
        depths = ",".join(str(d) for d in self.queue_depths.values())
        return (f"{self.elapsed_s:6.1f}s in={self.items_in} out={self.items_out} fps={self.fps:.1f} "
                f"(avg {self.fps_overall:.1f}) e2e p50/p95={_ms(self.latency_p50_ms)}/"
                f"{_ms(self.latency_p95_ms)}ms stages p50/p95 ms: {stages} queues=[{depths}] "
                f"dropped={self.total_dropped} errors={self.total_errors}")


def _ms(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.2f}"


def _no_nan(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_no_nan(v) for v in obj]
    return obj


def stage_latencies(windows: Iterable[tuple[str, RollingWindow]]) -> dict[str, StageLatency]:
    out = {}
    for name, w in windows:
        p50, p95 = w.percentiles(50, 95)
        out[name] = StageLatency(p50, p95, w.count)
    return out
