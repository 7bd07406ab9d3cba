"""Through real files: a clip made with cv2.VideoWriter, the file source, and ``ember pipeline run``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from sdk.cli import main
from sdk.pipeline import JsonlSink, Pipeline, Stage, VideoSink

FRAMES = 45


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (96, 64))
    for i in range(FRAMES):
        frame = np.zeros((64, 96, 3), np.uint8)
        frame[:, : 2 * i + 2] = (40, 200, 120)  # a bar that grows one step per frame
        writer.write(frame)
    writer.release()
    return path


def video_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def bar_width(frame: np.ndarray) -> int:
    return int((frame[32, :, 1] > 100).sum())


def test_file_uri_pipeline_delivers_every_frame_in_order(clip, tmp_path, recorder):
    sink = recorder()
    pipe = Pipeline(f"file://{clip}", [Stage("measure", bar_width)], [sink, VideoSink(tmp_path / "copy.mp4")])
    st = pipe.run()
    assert st.policies["measure"] == "block"  # a file is not live
    assert sink.seqs == list(range(FRAMES)) and st.items_out == FRAMES
    widths = [p.value for p in sink.packets]
    assert all(abs(w - (2 * i + 2)) <= 2 for i, w in enumerate(widths))  # decoded in order
    assert video_frames(tmp_path / "copy.mp4") == FRAMES
    assert cv2.VideoCapture(str(tmp_path / "copy.mp4")).get(cv2.CAP_PROP_FPS) == pytest.approx(15, abs=0.5)
    assert pipe.source.closed


def test_cli_run_writes_jsonl_video_and_final_stats(clip, tiny_model, tmp_path, capsys):
    out, video = tmp_path / "out.jsonl", tmp_path / "annotated.mp4"
    code = main(["pipeline", "run", "--source", f"file://{clip}", "--model", str(tiny_model),
                 "--labels", "a,b,c,d,e", "--top-k", "2", "--jsonl", str(out), "--video-out", str(video),
                 "--stats-every", "0.01"])
    assert code == 0
    captured = capsys.readouterr()
    stats = json.loads(captured.out)
    assert stats["items_out"] == FRAMES and stats["stop_reason"] == "end"
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in records] == list(range(FRAMES))
    assert all(r["value"]["label"] in "abcde" and len(r["value"]["top"]) == 2 for r in records)
    assert video_frames(video) == FRAMES


def test_cli_max_items_stops_an_endless_source(tiny_model, capsys):
    code = main(["pipeline", "run", "--source", "synthetic://video?width=64&height=48", "--model",
                 str(tiny_model), "--max-items", "7", "--stats-every", "0"])
    assert code == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["stop_reason"] == "stop" and stats["items_out"] == 6  # the 7th raised StopPipeline


def test_cli_errors_are_clean(tiny_model, tmp_path, capsys):
    assert main(["pipeline", "run", "--source", "file:///no/such.mp4", "--model", str(tiny_model)]) == 2
    assert "no/such.mp4" in capsys.readouterr().err
    assert main(["pipeline", "run", "--source", "synthetic://video", "--model", str(tmp_path / "x.onnx")]) == 2
    assert "x.onnx" in capsys.readouterr().err


def test_cli_ctrl_c_exits_cleanly_with_stats(tiny_model):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sdk", "pipeline", "run", "--source",
         "synthetic://video?width=64&height=48&realtime=true&fps=50", "--model", str(tiny_model),
         "--stats-every", "0.1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        for _ in range(100):  # statistics lines: wait until items have reached the sinks
            line = proc.stderr.readline()
            assert "fps=" in line, line
            if " out=0 " not in line:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    stats = json.loads(out)
    assert stats["stop_reason"] == "interrupt" and stats["items_out"] > 0
    assert "Traceback" not in err


def test_jsonl_to_stdout_keeps_stats_on_stderr(clip, tiny_model, capsys):
    assert main(["pipeline", "run", "--source", f"file://{clip}", "--model", str(tiny_model),
                 "--jsonl", "-", "--stats-every", "0"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == FRAMES
    assert json.loads(captured.err)["items_out"] == FRAMES


def test_jsonl_sink_through_python_api_and_file_source(clip, tmp_path):
    st = Pipeline(str(clip), [Stage("mean", lambda f: f.mean(axis=(0, 1)))], [JsonlSink(tmp_path / "m.jsonl")]).run()
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert len(rows) == st.items_out == FRAMES and len(rows[0]["value"]) == 3
    assert time.monotonic() >= rows[-1]["timestamp"]
