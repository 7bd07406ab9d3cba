"""The one timing loop and percentile (sdk.util.timing)."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from sdk.util.timing import Timing, interleave, percentile, percentiles, time_calls


@pytest.mark.parametrize("q", [0, 5, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy_on_unsorted_values(q):
    values = list(np.random.default_rng(q).normal(size=37))
    assert percentile(values, q) == pytest.approx(np.percentile(values, q))
    assert percentiles(values, q, 50) == pytest.approx((np.percentile(values, q), np.percentile(values, 50)))


def test_percentile_of_nothing_is_nan_and_timing_of_nothing_too():
    assert math.isnan(percentile([], 50))
    assert Timing.of([]).runs == 0 and math.isnan(Timing.of([]).p50_ms)


def test_time_calls_warms_up_then_runs_at_least_runs_and_min_time():
    calls = []
    t = time_calls(lambda: calls.append(time.perf_counter()), runs=10, warmup=3, min_time_s=0.05)
    end = time.perf_counter()
    assert len(calls) == t.runs + 3 and t.runs >= 10
    assert end - calls[2] >= 0.05  # the timed loop (after the last warm-up call) lasted min_time_s
    assert 0 <= t.min_ms <= t.p50_ms <= t.p95_ms


def test_time_calls_stops_at_the_budget():
    t = time_calls(lambda: time.sleep(0.01), runs=1000, warmup=0, budget_s=0.1)
    assert 5 <= t.runs < 50 and t.p50_ms >= 9


def test_interleave_alternates_the_order_each_round():
    order = []
    out = interleave({"a": lambda: order.append("a") or len(order), "b": lambda: order.append("b") or len(order)},
                     rounds=3)
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert out == {"a": [1, 4, 5], "b": [2, 3, 6]}
