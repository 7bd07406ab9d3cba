"""StageQueue policies and the rolling statistics."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from sdk.errors import ConfigError
from sdk.pipeline.queues import END, StageQueue, resolve_policy
from sdk.pipeline.stats import RateMeter, RollingWindow, TimedWindow, percentile


def test_block_put_waits_for_room():
    q = StageQueue("q", 2, "block")
    q.put(1)
    q.put(2)
    done = threading.Event()
    t = threading.Thread(target=lambda: (q.put(3), done.set()))
    t.start()
    assert not done.wait(0.1)  # full: the producer waits
    assert q.get() == 1
    assert done.wait(2)
    t.join()
    assert [q.get(), q.get()] == [2, 3] and q.dropped == 0


def test_drop_oldest_never_waits_and_counts():
    q = StageQueue("q", 3, "drop_oldest")
    for i in range(10):
        assert q.put(i)
    assert q.dropped == 7 and [q.get() for _ in range(3)] == [7, 8, 9]


def test_close_wakes_waiters_and_counts_discarded():
    q = StageQueue("q", 1, "block")
    q.put("a")
    results = []
    t = threading.Thread(target=lambda: results.append(q.put("b")))
    t.start()
    q.close()
    t.join(2)
    assert results == [False] and q.discarded == 2 and q.get() is END
    empty = StageQueue("e", 1, "block")
    g = threading.Thread(target=lambda: results.append(empty.get()))
    g.start()
    empty.close()
    g.join(2)
    assert results[-1] is END


def test_end_marker_drains_after_items():
    q = StageQueue("q", 4, "block")
    q.put(1)
    q.put(END)
    assert q.get() == 1 and q.get() is END


def test_policy_resolution():
    assert resolve_policy("auto", live=True) == "drop_oldest"
    assert resolve_policy("auto", live=False) == "block"
    assert resolve_policy("block", live=True) == "block"
    with pytest.raises(ConfigError, match="drop_newest"):
        resolve_policy("drop_newest", live=False)


@pytest.mark.parametrize("q", [0, 5, 50, 95, 100])
def test_percentile_matches_numpy(q):
    values = sorted(np.random.default_rng(1).exponential(3.0, 101).tolist())
    assert percentile(values, q) == pytest.approx(np.percentile(values, q))


def test_rolling_window_keeps_the_last_samples():
    w = RollingWindow(10)
    for v in range(100):
        w.add(float(v))
    assert w.count == 100 and w.snapshot() == [float(v) for v in range(90, 100)]
    p50, p95 = w.percentiles(50, 95)
    assert 90 <= p50 <= p95 <= 99
    assert np.isnan(RollingWindow().percentiles(50)[0])


def test_rate_meter_counts_recent_events_only():
    m = RateMeter(window_s=1.0)
    for i in range(11):
        m.mark(100.0 + i * 0.1)  # 10 per second
    assert m.rate(now=101.0) == pytest.approx(10.0)
    assert m.rate(now=200.0) == 0.0


def test_timed_window_percentile_over_recent_samples_only():
    w = TimedWindow(size=4)
    for t, v in [(0.0, 100.0), (1.0, 1.0), (2.0, 2.0), (3.0, 3.0), (4.0, 4.0)]:  # the first is pushed out
        w.add(t, v)
    assert w.percentile(50, since=-1.0) == pytest.approx(2.5)
    assert w.percentile(95, since=2.0) == pytest.approx(np.percentile([2.0, 3.0, 4.0], 95))
    assert w.percentile(50, since=3.0) is None  # two samples: fewer than min_count
    assert w.percentile(50, since=3.0, min_count=2) == pytest.approx(3.5)
    w.clear()
    assert w.percentile(50, since=-1.0) is None


def test_a_blocked_producer_is_woken_once_the_queue_is_down_to_half():
    q = StageQueue("q", 4, "block")
    for i in range(4):
        q.put(i)
    done = threading.Event()
    t = threading.Thread(target=lambda: (q.put(4), done.set()))
    t.start()
    assert q.get() == 0 and not done.wait(0.2) and len(q) == 3  # 3 of 4: still waiting
    assert q.get() == 1 and done.wait(5) and len(q) == 3  # down to 2: woken, put its item
    t.join(5)
    assert [q.get() for _ in range(3)] == [2, 3, 4] and q.dropped == 0
