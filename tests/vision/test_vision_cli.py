"""``ember run vision`` end to end on a generated clip (JSON lines, annotated video, telemetry spool,
events), the demo hook, and clear errors for bad options."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from apps.vision import APP
from apps.vision.demo import hopper
from apps.vision.synth import Sprite, moving_objects, road, write_clip
from sdk.cli import main


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    seq = moving_objects(road(320, 240), [Sprite(hopper(), "person")], frames=16, seed=1, height_frac=(0.6, 0.6))
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    write_clip(seq.frames, str(path))
    return path, seq


def test_run_writes_jsonl_video_and_telemetry(clip: tuple[Path, object], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path, _seq = clip
    jsonl, video, spool = tmp_path / "out.jsonl", tmp_path / "out.mp4", tmp_path / "t.spool"
    rc = main(["run", "vision", "--source", f"file://{path}", "--jsonl", str(jsonl), "--video-out", str(video),
               "--line", "160,0,160,240", "--roi", "0,0,100,240", "--telemetry", str(spool)])
    assert rc == 0
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert [x["seq"] for x in lines] == list(range(16))
    value = lines[8]["value"]
    assert set(value) == {"detections", "tracks", "events", "tier"}
    assert set(lines[8]["timings"]) == {"preprocess", "infer", "decode", "track"}
    for d in value["detections"]:
        assert set(d) >= {"box", "score", "label", "class_id"} and len(d["box"]) == 4
    cap = cv2.VideoCapture(str(video))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 16 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 320
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["frames"] == 16
    assert spool.exists() and spool.stat().st_size > 0


def test_run_summary_is_printed(clip: tuple[Path, object], capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = clip
    assert main(["run", "vision", "--source", f"file://{path}", "--max-frames", "5", "--no-track"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{"):])
    assert summary["frames"] == 5 and summary["stop_reason"] == "stop"


@pytest.mark.parametrize("opt", [["--roi", "1,2,3"], ["--line", "0,0,0,0"]])
def test_bad_zone_options_are_one_line_errors(clip: tuple[Path, object], opt: list[str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = clip
    assert main(["run", "vision", "--source", f"file://{path}", *opt]) != 0
    err = capsys.readouterr().err
    assert opt[0] in err and "Traceback" not in err


def test_without_a_source_the_sample_clip_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "vision", "--max-frames", "3", "--no-track"]) == 0
    captured = capsys.readouterr()
    assert "bundled sample clip" in captured.err
    assert json.loads(captured.out[captured.out.index("{"):])["frames"] == 3


def test_demo_writes_an_annotated_video(tmp_path: Path) -> None:
    lines = APP.demo(tmp_path, None, lambda _m: None)
    assert any("annotated video" in line for line in lines)
    cap = cv2.VideoCapture(str(tmp_path / "annotated.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 48
