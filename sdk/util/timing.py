"""The one timing loop and the one percentile of the project (model store, optimizer, pipeline
statistics, telemetry, benches).

    from sdk.util.timing import time_calls, percentile, interleave
    t = time_calls(lambda: session.run(None, feeds), warmup=5, runs=50, min_time_s=0.5)
    t.p50_ms, t.p95_ms, t.mean_ms, t.runs
    fps = interleave({"bare": run_bare, "ember": run_pipeline}, rounds=5)   # {name: [result per round]}

``time_calls``: ``warmup`` untimed calls, then timed calls until at least ``runs`` calls *and*
``min_time_s`` seconds (50 runs of a sub-millisecond model would otherwise fit inside one burst of
another process's load), stopping early once ``budget_s`` has passed (with at least 5 calls).
``interleave`` runs compared variants in alternating order, round after round, so that they see the
same load on a shared machine.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

T = TypeVar("T")


def percentile(values: Iterable[float], q: float, presorted: bool = False) -> float:
    """Linear-interpolated ``q``-th percentile (0..100), numpy's default method; NaN when empty."""
    xs = values if presorted and isinstance(values, Sequence) else sorted(values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * min(max(q, 0.0), 100.0) / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


def percentiles(values: Iterable[float], *qs: float) -> tuple[float, ...]:
    """Several percentiles of the same values (sorted once)."""
    xs = sorted(values)
    return tuple(percentile(xs, q, presorted=True) for q in qs)


@dataclass
class Timing:
    """Per-call wall time of a timed loop, in milliseconds."""

    p50_ms: float
    p95_ms: float
    mean_ms: float
    min_ms: float
    runs: int

    @classmethod
    def of(cls, times_ms: Sequence[float]) -> Timing:
        p50, p95 = percentiles(times_ms, 50, 95)
        n = len(times_ms)
        return cls(p50, p95, sum(times_ms) / n if n else math.nan, min(times_ms, default=math.nan), n)

    def as_dict(self, digits: int = 4) -> dict[str, Any]:
        return {k: round(v, digits) if isinstance(v, float) else v for k, v in asdict(self).items()}


def time_calls(fn: Callable[[], Any], runs: int = 50, warmup: int = 5, min_time_s: float = 0.0,
               budget_s: float | None = None) -> Timing:
    """Time ``fn()`` (see the module docstring for warm-up, minimum time and budget)."""
    clock = time.perf_counter
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = clock()
    while len(times) < runs or clock() - start < min_time_s:
        t0 = clock()
        fn()
        times.append((clock() - t0) * 1e3)
        if budget_s is not None and clock() - start > budget_s and len(times) >= 5:
            break
    return Timing.of(times)


def interleave(variants: Mapping[str, Callable[[], T]], rounds: int,
               progress: Callable[[Iterable[int]], Iterable[int]] | None = None) -> dict[str, list[T]]:
    """Call every variant once per round, in the given order on even rounds and reversed on odd
    ones, so compared variants share the machine's load; returns each variant's results in order."""
    out: dict[str, list[T]] = {name: [] for name in variants}
    names = list(variants)
    for r in (progress or iter)(range(rounds)):
        for name in (names if r % 2 == 0 else names[::-1]):
            out[name].append(variants[name]())
    return out
