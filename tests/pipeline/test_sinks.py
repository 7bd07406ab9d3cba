"""Every sink writes something real: JSON lines that parse, a video that OpenCV reads back."""

from __future__ import annotations

import io
import json
import math

import cv2
import numpy as np
import pytest

from sdk.errors import PipelineError
from sdk.pipeline import CallbackSink, DisplaySink, JsonlSink, Pipeline, Stage, VideoSink
from sdk.util.jsonutil import jsonable


def scores(frame: np.ndarray) -> dict:
    probs = np.array([frame[0, 0, 0], 255 - frame[0, 0, 0]], np.float32) / 255.0
    return {"probs": probs, "best": np.int64(probs.argmax()), "score": np.float32(probs.max())}


def test_jsonl_sink_writes_one_parsable_line_per_item(frames, tmp_path):
    path = tmp_path / "deep" / "out.jsonl"
    st = Pipeline(frames(60), [Stage("score", scores)], [JsonlSink(path)]).run()
    lines = path.read_text().splitlines()
    assert len(lines) == st.items_out == 60
    records = [json.loads(line) for line in lines]
    assert [r["seq"] for r in records] == list(range(60))
    first = records[1]
    assert first["value"]["best"] == 1 and first["value"]["probs"] == pytest.approx([1 / 255, 254 / 255])
    assert set(first["timings"]) == {"score"} and first["latency_ms"] >= 0 and first["timestamp"] > 0


def test_jsonl_sink_to_an_open_file_keeps_it_open():
    buf = io.StringIO()
    sink = JsonlSink(buf)
    Pipeline(frames_of(3), [Stage("s", lambda f: f.shape)], [sink]).run()
    assert not buf.closed
    assert [json.loads(line)["value"] for line in buf.getvalue().splitlines()] == [[8, 8, 3]] * 3


def frames_of(n):
    from sdk.sources.base import BaseSource

    class Few(BaseSource):
        def _open(self):
            pass

        def _items(self):
            for _ in range(n):
                yield np.zeros((8, 8, 3), np.uint8), None, None

    return Few("memory://few")


def test_jsonable_handles_numpy_and_non_finite():
    value = {"a": np.array([1.0, np.nan, np.inf]), "b": (np.uint8(3), np.bool_(True)), 4: b"\x01",
             "c": float("nan"), "d": np.zeros((2, 2), np.int16)}
    out = jsonable(value)
    assert out == {"a": [1.0, None, None], "b": [3, True], "4": "01", "c": None, "d": [[0, 0], [0, 0]]}
    json.dumps(out, allow_nan=False)


def test_jsonl_sink_unwritable_path_is_a_clear_error(frames, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PipelineError, match="sink:JsonlSink.*cannot write"):
        Pipeline(frames(3), [Stage("a", np.mean)], [JsonlSink(blocker / "out.jsonl")]).run()


def test_video_sink_writes_every_frame_with_overlay(frames, tmp_path):
    path = tmp_path / "out.mp4"
    src = frames(40, hw=(96, 128))
    st = Pipeline(src, [Stage("score", scores)], [VideoSink(path, fps=20)]).run()
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    read = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        read.append(frame)
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(read) == st.items_out == 40
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(20, abs=0.5)
    assert read[0].shape == (96, 128, 3)
    cap.release()
    # the default overlay drew text: the top-left corner differs from the plain frame, the bottom does not
    changed = np.abs(read[10].astype(int) - src.frame(10).astype(int)).max(axis=2) > 80
    assert changed[:40].sum() > 100 and changed[50:].sum() == 0


def test_video_sink_custom_draw_and_gray_frames(tmp_path):
    from sdk.sources.base import BaseSource

    class Gray(BaseSource):
        def _open(self):
            pass

        def _items(self):
            for i in range(12):
                yield np.full((64, 64), i * 10, np.uint8), None, None

    def box(frame, packet):
        cv2.rectangle(frame, (8, 8), (56, 56), (0, 0, 255), -1)

    path = tmp_path / "gray.avi"
    Pipeline(Gray("memory://gray"), [Stage("id", lambda f: f)], [VideoSink(path, draw=box, fourcc="MJPG")]).run()
    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read()
    assert ok and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    assert frame[32, 32, 2] > 200 and frame[32, 32, 0] < 60  # red box in BGR
    cap.release()


def test_video_sink_rejects_non_frames_with_its_name(tmp_path):
    from sdk.sources.base import BaseSource

    class Audio(BaseSource):
        def _open(self):
            pass

        def _items(self):
            yield np.zeros((1600, 1), np.float32), None, None

    with pytest.raises(PipelineError, match="sink:clip.*H×W×3"):
        Pipeline(Audio("memory://audio"), [Stage("id", lambda a: a)],
                 [VideoSink(tmp_path / "a.mp4", name="clip")]).run()


def test_display_sink_without_a_screen_fails_at_open(frames, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    src = frames(3)
    with pytest.raises(PipelineError, match="no screen.*DISPLAY"):
        Pipeline(src, [Stage("a", np.mean)], [DisplaySink()]).run()
    assert src.closed


def test_display_sink_with_headless_opencv_says_so(monkeypatch):
    if "GUI:" in cv2.getBuildInformation() and "NONE" not in cv2.getBuildInformation().split("GUI:")[1][:40]:
        pytest.skip("hardware: this OpenCV has a GUI backend; needs a real screen to test")
    monkeypatch.setenv("DISPLAY", ":99")
    with pytest.raises(PipelineError, match="no GUI support"):
        DisplaySink().open()


def test_callback_sink_is_named_after_the_function(frames):
    got = []

    def collect(packet):
        got.append((packet.item.seq, packet.value, math.isfinite(packet.latency_ms)))

    sink = CallbackSink(collect)
    assert sink.name == "callback:collect"
    Pipeline(frames(5), [Stage("n", lambda f: int(f[0, 0, 0]))], [sink]).run()
    assert got == [(i, i, True) for i in range(5)]
