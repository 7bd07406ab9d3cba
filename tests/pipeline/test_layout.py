"""Thread layouts: how many threads run which steps (sdk.pipeline.layout)."""

from __future__ import annotations

import threading

import pytest

from sdk.errors import ConfigError
from sdk.pipeline import Pipeline, Stage
from sdk.pipeline.layout import segments, thread_count


@pytest.mark.parametrize(("n", "threads", "expected"), [
    (2, 1, [(0, 4)]),                              # one thread: source, both stages, sinks
    (2, 2, [(0, 1), (1, 4)]),                      # the reader, then everything else
    (2, 3, [(0, 1), (1, 2), (2, 4)]),              # sinks share the last stage's thread
    (2, 4, [(0, 1), (1, 2), (2, 3), (3, 4)]),      # every step its own thread
    (2, 9, [(0, 1), (1, 2), (2, 3), (3, 4)]),      # never more than one per step
    (0, 2, [(0, 1), (1, 2)]),
])
def test_segments_cut_after_the_source_first_then_after_each_stage(n, threads, expected):
    assert segments(n, threads) == expected


def test_thread_count_follows_the_cpus_and_gives_a_live_source_its_reader():
    assert thread_count(3, live=False, cpus=1) == 1
    assert thread_count(3, live=True, cpus=1) == 2
    assert thread_count(3, live=False, cpus=2) == 3
    assert thread_count(1, live=False, cpus=16) == 3  # source, stage, sinks
    assert thread_count(3, live=False, threads=2, cpus=16) == 2


def test_threads_option_sets_the_threads_a_pipeline_starts(frames, recorder):
    seen: set[str] = set()

    def where(x):
        seen.add(threading.current_thread().name)
        return x

    for threads, names in ((1, {"one:source"}), (4, {"one:a", "one:b"})):
        seen.clear()
        stages = [Stage("a", where), Stage("b", where)]
        st = Pipeline(frames(20), stages, [recorder()], name="one", threads=threads).run()
        assert st.items_out == 20 and seen == names


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_threads_must_be_a_positive_whole_number(frames, bad):
    with pytest.raises(ConfigError, match="threads must be"):
        Pipeline(frames(1), threads=bad)
