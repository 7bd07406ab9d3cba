"""``ember run health`` / ``ember eval health`` end to end, the shipped model in every tier and backend,
and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from apps.health.app import SAMPLE
from apps.health.classifier import MODEL_DIR, BeatClassifier
from apps.health.features import beat_inputs
from apps.health.frontend import to_units
from apps.health.monitor import HealthMonitor
from apps.health.records import read_record
from sdk.cli import main
from sdk.errors import EmberError

VARIANTS = [(v["tier"], v["backend"]) for v in json.loads((MODEL_DIR / "manifest.json").read_text())["variants"]]


@pytest.fixture(scope="module")
def sample_inputs() -> np.ndarray:
    beats = beat_inputs(to_units(read_record(SAMPLE).signal))
    return np.stack([b.tensor() for b in beats])[:40]     # N, V and F beats (tinygrad runs ~20 ms a beat)


def test_shipped_model_has_an_int8_tier_under_20_kb() -> None:
    sizes = {(t, b): (MODEL_DIR / v["file"]).stat().st_size
             for (t, b), v in zip(VARIANTS, json.loads((MODEL_DIR / "manifest.json").read_text())["variants"])}
    assert sizes[("int8", "litert")] <= 20 * 1024 and ("fp32", "onnxruntime") in sizes


@pytest.mark.parametrize(("tier", "backend"), VARIANTS)
def test_every_tier_and_backend_agrees_with_fp32(tier: str, backend: str, sample_inputs: np.ndarray) -> None:
    ref = BeatClassifier(tier="fp32", backend="onnxruntime")
    clf = BeatClassifier(tier=tier, backend=backend)
    try:
        assert clf.variant == f"{tier}/{backend}"
        a, b = ref.probabilities(sample_inputs), clf.probabilities(sample_inputs)
    finally:
        ref.close()
        clf.close()
    assert b.shape == (len(sample_inputs), 4) and np.allclose(b.sum(1), 1, atol=1e-3)
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.95


def test_run_on_the_sample_writes_beats_alerts_and_a_plot(tmp_path: Path, capsys) -> None:
    out, png = tmp_path / "out.jsonl", tmp_path / "p.png"
    assert main(["run", "health", "--jsonl", str(out), "--plot", str(png), "--tier", "int8"]) == 0
    events = [json.loads(line) for line in out.read_text().splitlines()]
    beats = [e for e in events if e["type"] == "beat"]
    ref = read_record(SAMPLE)
    assert abs(len(beats) - len(ref.beats)) <= 2
    assert {"N", "V"} <= {b["class"] for b in beats}
    assert any(e["type"] == "alert" and e["alert"] in ("v_couplet", "bigeminy", "v_run") for e in events)
    assert png.stat().st_size > 10_000
    assert "beats" in capsys.readouterr().err


def test_other_rates_are_resampled(tmp_path: Path) -> None:
    rec = read_record(SAMPLE)
    t = np.arange(len(rec.signal)) / 360
    t250 = np.arange(0, t[-1], 1 / 250)
    x250 = np.interp(t250, t, rec.signal)
    csv = tmp_path / "ecg.csv"
    np.savetxt(csv, x250[:, None], fmt="%.4f")
    out = tmp_path / "o.jsonl"
    assert main(["run", "health", "--source", f"csv://{csv}", "--rate", "250", "--jsonl", str(out)]) == 0
    got = [json.loads(x)["sample"] for x in out.read_text().splitlines() if '"beat"' in x]
    assert abs(len(got) - len(rec.beats)) <= 3


def test_monitor_rejects_a_rate_that_is_not_ecg() -> None:
    with pytest.raises(EmberError, match="125-1000 Hz"):
        HealthMonitor(rate=16000)


def _copy_record(src: Path, dest: Path, ann: bool = True) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for ext in ("hea", "dat") + (("atr",) if ann else ()):
        shutil.copy(src.with_suffix(f".{ext}"), dest / f"{src.name}.{ext}")
    return dest / src.name


def test_eval_scores_a_folder(tmp_path: Path, capsys) -> None:
    _copy_record(SAMPLE, tmp_path / "data")
    assert main(["eval", "health", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "r.json"),
                 "--plot", str(tmp_path / "cm.png")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["records"] == 1 and res["qrs"]["se"] > 0.97 and res["qrs"]["ppv"] > 0.97
    assert set(res["per_record"]) == {SAMPLE.name} and res["confusion"]["classes"] == ["N", "S", "V", "F", "Q"]
    assert (tmp_path / "cm.png").is_file()


def test_eval_errors_are_one_clear_line(tmp_path: Path, capsys) -> None:
    _copy_record(SAMPLE, tmp_path / "noann", ann=False)
    assert main(["eval", "health", "--data", str(tmp_path / "noann")]) == 2
    assert "no WFDB record with beat annotations" in capsys.readouterr().err
    rec = _copy_record(SAMPLE, tmp_path / "bad")
    rec.with_suffix(".hea").write_text("this is not a header\n")
    assert main(["eval", "health", "--data", str(tmp_path / "bad")]) == 2
    assert "cannot read WFDB record" in capsys.readouterr().err


def test_missing_lead_falls_back_to_the_first_channel(tmp_path: Path) -> None:
    out = tmp_path / "o.jsonl"
    assert main(["run", "health", "--lead", "V5", "--jsonl", str(out)]) == 0
    assert sum('"beat"' in x for x in out.read_text().splitlines()) > 80


def test_demo_part_shows_beats_alerts_and_a_plot(tmp_path: Path) -> None:
    from apps.health import APP

    said: list[str] = []
    lines = APP.demo(tmp_path, None, said.append)
    assert said and "record 208" in said[0]
    assert any("beats detected" in line for line in lines) and any("v_couplet" in line for line in lines)
    assert (tmp_path / "health.png").stat().st_size > 10_000


def test_alerts_and_quality_go_to_telemetry(tmp_path: Path) -> None:
    from sdk.telemetry import read_messages

    spool = tmp_path / "t.spool"
    cfg = tmp_path / "ember.toml"
    cfg.write_text(f'[telemetry]\nspool = "{spool}"\ndevice_id = "ecg-1"\n')
    assert main(["--config", str(cfg), "run", "health", "--quiet", "--telemetry", "--tier", "int8"]) == 0
    kinds = [m["body"].get("kind") for m in read_messages(spool)]
    assert "health.alert" in kinds and "health.quality" in kinds


def test_lead_off_is_no_pause_and_beats_resume() -> None:
    from sdk.sources.ecg import synthetic_ecg

    ecg = synthetic_ecg(20, hr=70, seed=7).signal
    x = np.concatenate([ecg, np.zeros(10 * 360, np.float32), ecg])
    mon = HealthMonitor(classifier=BeatClassifier(tier="int8", backend="onnxruntime"))
    events = []
    for s in range(0, len(x), 360):
        events += mon.process(x[s:s + 360])
    events += mon.finish()
    mon.close()
    assert any(e["type"] == "quality" and e["state"] == "flat" and not e["usable"] for e in events)
    assert not any(e["type"] == "alert" and e["alert"] in ("pause", "bradycardia") for e in events)
    beats = [e["t"] for e in events if e["type"] == "beat"]
    assert sum(t > 32 for t in beats) >= 18          # beats are found again after the gap


def test_irregular_alert_covers_atrial_fibrillation(shared_data: Path) -> None:
    import wfdb

    path = shared_data / "mitbih" / "201"
    rec = read_record(path)
    ann = wfdb.rdann(str(path), "atr")
    marks = [(int(s), n) for s, a, n in zip(ann.sample, ann.symbol, ann.aux_note) if a == "+"]
    af = [(s / 360, (marks[k + 1][0] if k + 1 < len(marks) else len(rec.signal)) / 360)
          for k, (s, n) in enumerate(marks) if n.startswith("(AF")]
    mon = HealthMonitor(classifier=BeatClassifier(tier="int8", backend="onnxruntime"))
    events = []
    for s in range(0, len(rec.signal), 3600):
        events += mon.process(rec.signal[s:s + 3600])
    events += mon.finish()
    mon.close()
    irr = [(e["start_s"], e["end_s"]) for e in events if e["type"] == "alert" and e["event"] == "end"
           and e["alert"] == "irregular"]
    covered = sum(max(0.0, min(b, d) - max(a, c)) for a, b in irr for c, d in af)
    assert covered >= 0.8 * sum(d - c for c, d in af)


def test_eval_resamples_a_250_hz_record_with_another_lead_name(tmp_path: Path) -> None:
    import wfdb

    rec = read_record(SAMPLE)
    t = np.arange(len(rec.signal)) / 360
    t250 = np.arange(0, t[-1], 1 / 250)
    x = np.interp(t250, t, rec.signal)[:, None]
    data = tmp_path / "data"
    data.mkdir()
    wfdb.wrsamp("r250", fs=250, units=["mV"], sig_name=["ECG"], p_signal=x, fmt=["16"], write_dir=str(data))
    beats = np.round(rec.beats * 250 / 360).astype(int)
    wfdb.wrann("r250", "atr", beats, ["N" if c == "N" else "V" for c in rec.labels], write_dir=str(data))
    assert main(["eval", "health", "--data", str(data), "--out", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["per_record"]["r250"]["lead"] == "ECG"
    assert res["qrs"]["se"] > 0.97 and res["qrs"]["ppv"] > 0.97
