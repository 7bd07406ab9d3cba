"""``ember demo`` end to end on its generated clip, and on real images with ``--data``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sdk.cli import main
from sdk.demo import describe, run_demo
from sdk.telemetry import read_messages


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return run_demo(tmp_path_factory.mktemp("demo"), frames=900, progress=lambda _m: None)


def test_demo_finds_the_ball(demo) -> None:  # type: ignore[no-untyped-def]
    assert demo.frames == 900
    assert demo.accuracy is not None and demo.accuracy > 0.85


def test_demo_switches_tiers_under_the_battery_script(demo) -> None:  # type: ignore[no-untyped-def]
    switches = [e["data"] for e in demo.events if e["kind"] == "tier.switch" and e["data"].get("from")]
    assert [s["to"].split("/")[0] for s in switches][:2] == ["int8", "fp32"]
    assert "battery" in switches[0]["reason"]
    assert set(demo.accuracy_by_tier) == {"fp32", "int8"}


def test_demo_detects_the_dusk_drift_and_spools_it(demo) -> None:  # type: ignore[no-untyped-def]
    alerts = {e["data"]["feature"] for e in demo.events
              if e["kind"] == "drift.state" and e["data"]["state"] == "alert"}
    assert "brightness" in alerts
    kinds = {m["kind"] for m in read_messages(demo.files["spool"])}
    assert {"event", "drift", "telemetry"} <= kinds
    assert Path(demo.files["report"]).read_text().lower().startswith("<!doctype html>")
    lines = Path(demo.files["results"]).read_text().splitlines()
    assert len(lines) == 900 and "label" in json.loads(lines[0])["value"]
    text = describe(demo)
    assert "found: the ball's quadrant" in text and "drift: brightness " in text and "→ alert" in text


def test_demo_cli_on_real_images(tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images = shared_data / "detection" / "val" / "images"
    assert main(["demo", "--out", str(tmp_path), "--data", str(images), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] is None
    assert result["frames"] == len(list(images.iterdir()))
