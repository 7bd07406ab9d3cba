"""``ember run speech``, ``ember eval speech`` and the demo part, on the bundled recording (no shared data)."""

from __future__ import annotations

import json

from apps.speech import APP
from apps.speech.live import SAMPLE
from sdk.cli import main


def test_run_writes_json_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the telemetry spool lands here
    out = tmp_path / "d.jsonl"
    assert main(["run", "speech", "--jsonl", str(out), "--tier", "int8", "--backend", "onnxruntime"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    spoken = (SAMPLE.parent / "keywords.txt").read_text().split()
    assert rows and all(set(r) == {"keyword", "time_s", "confidence", "tier"} for r in rows)
    assert sum(r["keyword"] in spoken for r in rows) >= len(spoken) - 1
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["summary"]
    assert summary["detections"] == len(rows) and summary["windows"] > 60
    assert (tmp_path / "ember-telemetry.spool").exists()


def test_run_bad_options_are_one_line_errors(capsys):
    assert main(["run", "speech", "--keywords", "banana", "--no-telemetry"]) == 2
    assert "unknown keyword" in capsys.readouterr().err
    assert main(["run", "speech", "--source", "file:///nope.wav", "--no-telemetry"]) == 2
    assert "nope.wav" in capsys.readouterr().err


def test_eval_on_a_folder_with_streams_and_plot(sample_folder, tmp_path, capsys):
    plot, out = tmp_path / "c.png", tmp_path / "r.json"
    assert main(["eval", "speech", "--data", str(sample_folder), "--stream", "--hours", "0.02",
                 "--plot", str(plot), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["clips"] == 9 and result["tier"] == "fp32" and 0 <= result["accuracy"] <= 1
    assert len(result["confusion"]) == 12 and sum(map(sum, result["confusion"])) == 9
    assert result["accuracy"] >= 7 / 9
    s = result["stream"]
    assert s["keyword_stream"]["keywords"] == 7 and s["negative_stream"]["hours"] >= 0.02
    assert 0 <= s["miss_rate"] <= 1 and s["false_accepts_per_hour"] >= 0
    assert plot.stat().st_size > 10_000
    assert json.loads(capsys.readouterr().out) == result


def test_eval_without_label_folders_is_a_clear_error(tmp_path, capsys):
    assert main(["eval", "speech", "--data", str(tmp_path)]) == 2
    assert "no audio clips in label sub-folders" in capsys.readouterr().err


def test_demo_prints_the_detections(tmp_path):
    lines = APP.demo(tmp_path / "speech", None, lambda _m: None)
    assert lines[-1].startswith("  speech: ") and "quiet windows skipped" in lines[-1]
    assert len(lines) >= 6  # one line per detection, then the summary
