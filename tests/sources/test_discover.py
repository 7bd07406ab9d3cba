"""``discover()`` and the ``ember devices`` / ``ember probe`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdk.cli import main
from sdk.sources import discover as d


def test_discover_reports_every_section() -> None:
    report = d.discover()
    assert {"device_class", "cameras", "microphones", "serial", "runtimes", "power"} <= set(report)
    ort = report["runtimes"]["onnxruntime"]
    assert ort["available"] and "CPUExecutionProvider" in ort["providers"]
    for section in ("cameras", "microphones", "serial"):
        s = report[section]
        assert s["devices"] or s["reason"]  # either something found, or why not
    json.dumps(report, default=str)
    text = d.format_report(report)
    assert "cameras:" in text and "onnxruntime" in text and "csi://0" in text


def test_sysfs_readings(tmp_path: Path) -> None:
    supplies, thermal, dev, v4l = (tmp_path / n for n in ("ps", "th", "dev", "v4l"))
    (supplies / "BAT0").mkdir(parents=True)
    (supplies / "BAT0" / "type").write_text("Battery\n")
    (supplies / "BAT0" / "capacity").write_text("57\n")
    (supplies / "BAT0" / "status").write_text("Discharging\n")
    (thermal / "thermal_zone0").mkdir(parents=True)
    (thermal / "thermal_zone0" / "temp").write_text("48500\n")
    (thermal / "thermal_zone0" / "type").write_text("cpu-thermal\n")
    p = d.power(supplies, thermal)
    if p["battery"]["battery_percent"] != 57.0:  # psutil found a real battery first
        pytest.skip("hardware: this machine has a real battery")
    assert p["battery"] == {"battery_percent": 57.0, "charging": False}
    assert p["thermal_zones"] == [{"name": "thermal_zone0", "type": "cpu-thermal", "temperature_c": 48.5}]
    dev.mkdir()
    (dev / "video0").touch()
    (dev / "video10").touch()
    (v4l / "video0").mkdir(parents=True)
    (v4l / "video0" / "name").write_text("USB Camera\n")
    cams = d.cameras(dev, v4l)
    assert [c["name"] for c in cams["devices"]] == ["USB Camera", "unknown"]
    assert cams["devices"][0]["uri"] == f"v4l2://{dev}/video0"


def test_devices_cli_json_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "runtimes" in report and "microphones" in report
    assert main(["devices"]) == 0
    assert "serial ports:" in capsys.readouterr().out


def test_probe_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["probe", "synthetic://ecg?hr=90", "-n", "4", "-o", "block=90", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["items"] == 4 and out["stats"]["delivered"] == 4 and out["meta"]["block"] == 90
    assert main(["probe", str(tmp_path / "missing.wav")]) == 2
    assert "missing.wav" in capsys.readouterr().err
