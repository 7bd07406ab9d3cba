"""End-to-end behaviour of Pipeline: order, drops, shutdown paths, errors, statistics."""

from __future__ import annotations

import _thread
import json
import signal
import sys
import threading
import time

import numpy as np
import pytest

from sdk.errors import ConfigError, PipelineError, SourceError
from sdk.events import EventBus
from sdk.pipeline import CallbackSink, Pipeline, Stage, StopPipeline


def accounted(st) -> int:
    return st.items_out + st.total_dropped + st.total_errors + st.discarded


def once_output(pipe: Pipeline, action) -> threading.Thread:
    """Call ``action`` from another thread once items have reached the sinks."""

    def wait_then_act():
        deadline = time.monotonic() + 30
        while pipe.stats().items_out < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        action()

    t = threading.Thread(target=wait_then_act, daemon=True)
    t.start()
    return t


def test_block_policy_keeps_every_item_in_order(frames, recorder, frame_index, no_pipeline_threads):
    src, sink = frames(400), recorder()

    def jitter(x):  # uneven stage times, so queues fill and empty
        if frame_index(x) % 7 == 0:
            time.sleep(0.001)
        return x

    stages = [Stage("decode", frame_index), Stage("jitter", lambda i: i), Stage("square", lambda i: i * i)]
    stages.insert(1, Stage("slow", lambda i: (time.sleep(0.0005) if i % 5 == 0 else None, i)[1]))
    pipe = Pipeline(src, [Stage("pre", jitter), *stages], [sink], policy="block", queue_size=2, name="order")
    st = pipe.run()
    assert sink.seqs == list(range(400))
    assert [p.value for p in sink.packets] == [i * i for i in range(400)]
    assert st.items_in == st.items_out == 400 and st.total_dropped == 0 and st.discarded == 0
    assert st.stop_reason == "end" and not st.running
    assert set(sink.packets[0].timings) == {"pre", "decode", "slow", "jitter", "square"}
    assert src.closed and sink.opened == 1 and sink.closed == 1
    no_pipeline_threads("order")


def test_auto_policy_follows_source_liveness(frames):
    assert set(Pipeline(frames(1), [Stage("a", abs)]).stats().policies.values()) == {"block"}
    live = Pipeline(frames(1, live=True), [Stage("a", abs), Stage("b", abs, policy="block")])
    assert live.stats().policies == {"a": "drop_oldest", "b": "block", "sinks": "drop_oldest"}


def test_live_source_with_slow_stage_drops_oldest_and_accounts_for_all(frames, recorder, no_pipeline_threads):
    sink = recorder()
    pipe = Pipeline(frames(150, live=True), [Stage("slow", lambda x: (time.sleep(0.003), x)[1])], [sink],
                    queue_size=2, name="live")
    st = pipe.run()
    assert st.policies["slow"] == "drop_oldest"
    assert st.dropped["slow"] > 0
    assert st.items_in == 150
    assert st.items_in == st.items_out + st.total_dropped + st.total_errors and st.discarded == 0
    assert sink.seqs == sorted(sink.seqs) and len(set(sink.seqs)) == len(sink.seqs)
    assert sink.seqs[-1] == 149  # the newest item is never the one dropped
    no_pipeline_threads("live")


def test_stop_from_another_thread(frames, recorder, no_pipeline_threads):
    src, sink = frames(None, fps=500), recorder()
    pipe = Pipeline(src, [Stage("a", np.mean)], [sink], name="stopper")
    once_output(pipe, pipe.stop)
    st = pipe.run()
    assert st.stop_reason == "stop" and st.items_out >= 3
    assert st.items_in == accounted(st)
    assert src.closed and src.close_calls == 1 and sink.closed == 1
    no_pipeline_threads("stopper")


@pytest.mark.parametrize("how", ["interrupt_main", "raise_signal"])
def test_ctrl_c_stops_cleanly(frames, recorder, no_pipeline_threads, how):
    src, sink = frames(None, fps=500), recorder()
    pipe = Pipeline(src, [Stage("a", np.mean)], [sink], name=f"sigint-{how}")
    trigger = _thread.interrupt_main if how == "interrupt_main" else lambda: signal.raise_signal(signal.SIGINT)
    before = signal.getsignal(signal.SIGINT)
    once_output(pipe, trigger)
    st = pipe.run()
    assert st.stop_reason == "interrupt"
    assert st.items_in == accounted(st) and st.items_out > 0
    assert src.closed and sink.closed == 1
    assert signal.getsignal(signal.SIGINT) is before
    no_pipeline_threads(f"sigint-{how}")


def test_source_blocked_in_a_read_is_closed_to_unblock_it(frames, no_pipeline_threads):
    src = frames(None, block_after=5)
    pipe = Pipeline(src, [Stage("a", np.mean)], name="blocked").start()
    while pipe.stats().items_out < 5:
        time.sleep(0.01)
    pipe.stop()
    st = pipe.join()
    assert st.items_out == 5 and src.closed
    no_pipeline_threads("blocked")


def test_stage_error_stops_with_the_stage_name(frames, recorder, no_pipeline_threads):
    bus, events = EventBus(), []
    bus.subscribe(events.append)
    src, sink = frames(100), recorder()

    def explode(x):
        if x == 42:
            raise ZeroDivisionError("bad frame")
        return x

    pipe = Pipeline(src, [Stage("decode", lambda f: int(f[0, 0, 0])), Stage("classify", explode)], [sink],
                    bus=bus, name="failing")
    with pytest.raises(PipelineError, match="classify.*ZeroDivisionError: bad frame") as info:
        pipe.run()
    assert info.value.stage == "classify"
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert [e.kind for e in events] == ["pipeline.error"]
    assert events[0].data["stage"] == "classify" and events[0].data["seq"] == 42
    assert events[0].data["action"] == "stop"
    json.dumps(events[0].as_dict())
    assert sink.seqs == list(range(len(sink.seqs))) and 42 not in sink.seqs
    st = pipe.stats()
    assert st.stop_reason == "error" and st.errors == {"classify": 1}
    assert st.items_in == accounted(st)
    assert src.closed and sink.closed == 1
    no_pipeline_threads("failing")


def test_on_error_skip_counts_and_continues(frames, recorder, frame_index):
    bus, events = EventBus(), []
    bus.subscribe(events.append)
    sink = recorder()

    def picky(i):
        if i % 10 == 3:
            raise ValueError(f"cannot use {i}")
        return i

    pipe = Pipeline(frames(200), [Stage("index", frame_index), Stage("picky", picky)], [sink],
                    on_error="skip", bus=bus)
    st = pipe.run()
    assert st.errors == {"picky": 20}
    assert sink.seqs == [i for i in range(200) if i % 10 != 3]
    assert st.items_out == 180 and st.items_in == accounted(st)
    assert 1 <= len(events) <= 20 and events[0].data["action"] == "skip"


def test_failing_sink_is_named(frames, recorder):
    good, bad = recorder("archive"), recorder("uploader", fail_at=7)
    pipe = Pipeline(frames(50), [Stage("a", np.mean)], [good, bad])
    with pytest.raises(PipelineError, match="uploader.*disk full at 7") as info:
        pipe.run()
    assert info.value.stage == "sink:uploader"
    assert good.closed == 1 and bad.closed == 1


def test_source_error_is_named_source(frames, recorder):
    sink = recorder()
    pipe = Pipeline(frames(100, fail_at=30), [Stage("a", np.mean)], [sink])
    with pytest.raises(PipelineError, match="source.*read error at frame 30") as info:
        pipe.run()
    assert info.value.stage == "source"
    assert sink.seqs == list(range(30))  # what was read before the error still reached the sinks
    st = pipe.stats()
    assert st.stop_reason == "error" and st.items_in == st.items_out == 30 and st.errors == {}


def test_stop_pipeline_from_a_sink_ends_without_error(frames):
    seen = []

    def take_ten(packet):
        seen.append(packet.item.seq)
        if len(seen) == 10:
            raise StopPipeline

    st = Pipeline(frames(None), [Stage("a", np.mean)], [CallbackSink(take_ten)]).run()
    assert st.stop_reason == "stop" and st.items_out == 9 and seen == list(range(10))
    assert st.items_in == accounted(st)


def test_sink_open_failure_closes_the_source(frames, recorder):
    class Unwritable(recorder):
        def open(self):
            raise PermissionError("read-only file system")

    src, first = frames(10), recorder()
    with pytest.raises(PipelineError, match="sink:Unwritable.*read-only"):
        Pipeline(src, [Stage("a", np.mean)], [first, Unwritable()]).run()
    assert src.closed and first.closed == 1


def test_stats_are_readable_while_running_and_sane(frames):
    snapshots = []
    pipe = Pipeline(frames(None, fps=400), [Stage("pre", np.mean), Stage("post", float)], name="stats")

    def stop_after_two_snapshots():
        deadline = time.monotonic() + 30
        while sum(s.items_out >= 3 for s in snapshots) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        pipe.stop()

    once_output(pipe, stop_after_two_snapshots)
    final = pipe.run(on_stats=snapshots.append, stats_every=0.1)
    assert len(snapshots) >= 2 and all(s.running for s in snapshots)
    for st in [*(s for s in snapshots if s.items_out >= 3), final]:
        d = st.as_dict()
        json.dumps(d)
        for key in ("items_in", "items_out", "fps", "fps_overall", "latency_p50_ms", "latency_p95_ms",
                    "stages", "dropped", "errors", "queue_depths", "discarded", "elapsed_s"):
            assert key in d
        assert set(d["stages"]) == {"pre", "post", "sinks"}
        assert set(d["queue_depths"]) == set(d["dropped"]) == {"pre", "post", "sinks"}
        assert st.latency_p50_ms <= st.latency_p95_ms
        for s in st.stages.values():
            assert 0 <= s.p50_ms <= s.p95_ms
        assert st.fps > 0 and st.fps_overall > 0 and st.items_out > 0
    assert final.items_out >= snapshots[-1].items_out
    assert "fps=" in final.summary()


def test_stats_before_any_item_are_json_safe(frames):
    d = Pipeline(frames(1), [Stage("a", abs)]).stats().as_dict()
    assert d["latency_p50_ms"] is None and d["items_in"] == 0
    json.dumps(d)


def test_bad_arguments_are_clear(frames):
    with pytest.raises(ConfigError, match="policy"):
        Pipeline(frames(1), [Stage("a", abs)], policy="fastest")
    with pytest.raises(ConfigError, match="on_error"):
        Pipeline(frames(1), [Stage("a", abs)], on_error="ignore")
    with pytest.raises(ConfigError, match="unique"):
        Pipeline(frames(1), [Stage("a", abs), Stage("a", abs)])
    with pytest.raises(ConfigError, match="queue_size"):
        Pipeline(frames(1), [Stage("a", abs)], queue_size=0)
    with pytest.raises(SourceError, match="unknown scheme"):
        Pipeline("nosuchscheme://x", [Stage("a", abs)])


def test_a_pipeline_runs_once(frames):
    pipe = Pipeline(frames(3), [Stage("a", np.mean)])
    pipe.run()
    with pytest.raises(PipelineError, match="already started"):
        pipe.run()


def test_second_ctrl_c_leaves_a_stuck_stage_behind(frames):
    release = threading.Event()
    pipe = Pipeline(frames(None), [Stage("stuck", lambda x: release.wait())], name="stuck")

    def interrupt_twice():
        while not pipe.running:  # run() installs its SIGINT handler before starting
            time.sleep(0.01)
        time.sleep(0.1)
        _thread.interrupt_main()
        time.sleep(0.3)  # the stage never returns, so run() is still waiting
        _thread.interrupt_main()

    threading.Thread(target=interrupt_twice, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            pipe.run()
    finally:
        release.set()
    pipe.join()  # once the stage returns, the pipeline still shuts down cleanly
    assert pipe.stats().stop_reason == "interrupt" and pipe.source.closed


def test_no_stages_passes_items_straight_to_the_sinks(frames, recorder):
    sink = recorder()
    st = Pipeline(frames(5), sinks=[sink]).run()
    assert st.items_out == 5 and [p.value.shape for p in sink.packets] == [(24, 32, 3)] * 5
    assert set(st.stages) == {"sinks"}


def test_switch_interval_is_lowered_while_running_and_restored(frames, cpus):
    before = sys.getswitchinterval()
    seen = []
    Pipeline(frames(3), [Stage("look", lambda x: seen.append(sys.getswitchinterval()))]).run()
    lowered = 0.001 if cpus > 1 else before  # one thread (1 CPU) has no thread switches to speed up
    assert seen == [lowered] * 3 and sys.getswitchinterval() == before
    Pipeline(frames(2), [Stage("look", lambda x: seen.append(sys.getswitchinterval()))],
             switch_interval=None).run()
    assert seen[3:] == [before] * 2


@pytest.fixture(autouse=True, params=[1, 2, 8], ids=["1cpu", "2cpus", "8cpus"])
def cpus(request, monkeypatch):
    """Every test here runs under the thread layouts chosen for 1 CPU (one thread, or a reader and a
    worker for a live source), 2 CPUs (3 threads) and 8 CPUs (one thread per step)."""
    monkeypatch.setattr("sdk.pipeline.layout.available_cpus", lambda: request.param)
    return request.param
