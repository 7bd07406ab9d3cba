"""Live camera sources with a scripted capture backend: reconnect/backoff, drops, clean close."""

from __future__ import annotations

import itertools
import threading

import pytest

from sdk.errors import SourceError
from sdk.sources import open_source
from sdk.sources.camera import csi_pipeline, opencv_has_gstreamer


def _counter(item) -> int:  # type: ignore[no-untyped-def]
    return int(item.data[0, 0, 0])


def _grab_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ember-grab")]


def test_reconnects_with_capped_exponential_backoff(scripted_camera) -> None:  # type: ignore[no-untyped-def]
    cam = scripted_camera([3, None, None, None, None, None, "forever"], delay=0.002)
    src = open_source("v4l2:///dev/video9", capture_factory=cam, backoff=0.001, backoff_max=0.004,
                      buffer=1000)
    seen = []
    with src:
        for item in src:
            seen.append(_counter(item))
            if len(seen) == 6:
                break
    assert seen == [1, 2, 3, 4, 5, 6]  # nothing lost around the reconnect (large ring)
    assert src.stats.reconnects == 1
    assert src.backoff_delays == [0.001, 0.002, 0.004, 0.004, 0.004, 0.004]  # 5 failed tries + 1
    assert cam.calls == 7
    assert not src.grabbing


def test_gives_up_after_retries_with_clear_error(scripted_camera) -> None:  # type: ignore[no-untyped-def]
    cam = scripted_camera([2, None])
    src = open_source("rtsp://cam.local/stream", capture_factory=cam, backoff=0.001, retries=3, buffer=8)
    got = []
    with pytest.raises(SourceError, match="not back after 3 reconnect tries"):
        for item in src:
            got.append(_counter(item))
    src.close()
    assert got == [1, 2]
    assert len(src.backoff_delays) == 3 and src.stats.reconnects == 0
    assert cam.released == 4  # the lost capture and the 3 that did not open, each released once


def test_slow_consumer_drops_oldest_and_counts_them(scripted_camera) -> None:  # type: ignore[no-untyped-def]
    import time

    cam = scripted_camera([40], delay=0.0005)
    src = open_source("v4l2:///dev/video3", capture_factory=cam, buffer=2, retries=0)
    got = []
    with pytest.raises(SourceError):
        for item in src:
            got.append(_counter(item))
            time.sleep(0.02)  # a slow consumer
    src.close()
    assert got == sorted(got) and got[-1] == 40  # newest frames, in order, the last one kept
    assert src.stats.dropped == 40 - len(got) > 0
    assert src.stats.delivered == len(got)


def test_close_stops_the_grab_thread_and_releases(scripted_camera) -> None:  # type: ignore[no-untyped-def]
    cam = scripted_camera(["forever"], delay=0.001)
    src = open_source("0", capture_factory=cam)
    src.open()
    assert src.grabbing and src.meta["live"] is True
    it = iter(src)
    first = next(it)
    assert first.seq == 0 and first.meta["kind"] == "camera" and first.meta["shape"] == (4, 4, 3)
    src.close()
    assert not src.grabbing and not _grab_threads()
    assert cam.released == 1
    assert list(it) == []  # iteration ends once closed


def test_close_from_another_thread_unblocks_consumer(scripted_camera) -> None:  # type: ignore[no-untyped-def]
    cam = scripted_camera([1, None], delay=0.001)  # one frame, then the camera is gone
    src = open_source("v4l2:///dev/video0", capture_factory=cam, backoff=0.05)
    items = []
    consumer = threading.Thread(target=lambda: items.extend(src))
    src.open()
    consumer.start()
    closer = threading.Timer(0.2, src.close)
    closer.start()
    consumer.join(5)
    closer.join(5)
    assert not consumer.is_alive() and len(items) == 1
    assert not _grab_threads()


def test_timestamps_and_sequence(scripted_camera) -> None:  # type: ignore[no-untyped-def]
    src = open_source("v4l2:///dev/video0", capture_factory=scripted_camera(["forever"]), buffer=4)
    with src:
        items = [item for _, item in zip(range(5), src)]
    assert [i.seq for i in items] == list(range(5))
    assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(items))


def test_missing_camera_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="no camera device /dev/video77"):
        open_source("v4l2:///dev/video77")
    src = open_source("v4l2://42")  # an index nobody has: the open fails cleanly
    with pytest.raises(SourceError, match="cannot open the camera"):
        src.open()


def test_csi_needs_gstreamer_or_says_so() -> None:
    if opencv_has_gstreamer():
        pytest.skip("hardware: this OpenCV has GStreamer; the error path cannot be shown")
    with pytest.raises(SourceError, match="GStreamer"):
        open_source("csi://0")


def test_csi_pipelines() -> None:
    jetson = csi_pipeline(1, 640, 480, 30, platform="jetson", flip=2)
    assert jetson.startswith("nvarguscamerasrc sensor-id=1") and "flip-method=2" in jetson
    assert "width=640, height=480, framerate=30/1" in jetson and jetson.endswith("sync=false")
    pi = csi_pipeline(0, 1280, 720, 15, platform="libcamera")
    assert pi.startswith("libcamerasrc") and "framerate=15/1" in pi and "format=BGR ! appsink" in pi
    with pytest.raises(ValueError):
        csi_pipeline(platform="x")
