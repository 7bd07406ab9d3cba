"""Features, reference profiles and drift: replayed reference data stays ok, shifted data alerts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sdk.errors import TelemetryError
from sdk.events import EventBus
from sdk.telemetry import (
    FeatureExtractor,
    ReferenceProfile,
    Telemetry,
    TelemetrySettings,
    build_reference_profile,
    chi_square,
    embed_in_manifest,
    ks_binned,
    psi,
)


def _images(rng: np.random.Generator, n: int, mean: float = 120.0, sd: float = 30.0) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        m = rng.normal(mean, 15)
        out.append(rng.normal(m, sd, (60, 80, 3)).clip(0, 255).astype(np.uint8))
    return out


def _tel(tmp_path: Path, profile: ReferenceProfile, bus: EventBus) -> Telemetry:
    s = TelemetrySettings(spool=str(tmp_path / "s.db"), device_id="d", window_block=100, window_blocks=4).finish()
    return Telemetry(s, profile=profile, bus=bus)


def test_statistics_are_exact_for_known_inputs() -> None:
    fx = FeatureExtractor("image")
    flat = np.full((64, 64, 3), 100, np.uint8)
    v = fx(flat).copy()
    assert v[0] == pytest.approx(100) and v[1] == pytest.approx(0, abs=1e-3) and v[2] == 0
    sr = 16000
    t = np.arange(sr) / sr
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    a = FeatureExtractor("audio")(tone, {"sample_rate": sr})
    assert a[0] == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.1)
    assert a[1] == pytest.approx(1000, rel=0.05)
    assert a[2] == pytest.approx(2000 / sr, rel=0.05)


def test_ecg_heart_rate_from_synthetic_beats() -> None:
    fs = 360
    x = np.zeros(fs * 10, np.float32)
    x[:: int(fs * 60 / 72)] = 1.0  # 72 bpm spikes
    x = np.convolve(x, np.hanning(9), mode="same").astype(np.float32)
    fx = FeatureExtractor("ecg")
    for k in range(10):
        v = fx(x[k * fs:(k + 1) * fs, None], {"sample_rate": fs})
    assert v[0] == pytest.approx(72, rel=0.05)
    assert v[1] > 0.5


def test_psi_ks_chi_square_basics() -> None:
    a = np.array([10, 20, 30, 40])
    assert psi(a, a) == pytest.approx(0) and ks_binned(a, a) == 0
    b = np.array([40, 30, 20, 10])
    assert psi(a, b) > 0.25 and ks_binned(a, b) == pytest.approx(0.4)
    stat, dof, p = chi_square(np.array([50, 50]), np.array([90, 10]))
    assert dof == 1 and stat == pytest.approx(64) and p < 1e-6


def test_no_alert_on_reference_replay_alert_on_shift(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ref = _images(rng, 600)
    outs = [rng.dirichlet((3, 2, 1)) for _ in range(600)]
    profile = build_reference_profile(ref, "image", outputs=outs, labels=["a", "b", "c"])
    bus = EventBus()
    events = []
    bus.subscribe(lambda e: events.append(e.data) if e.kind == "drift.state" else None)
    tel = _tel(tmp_path, profile, bus)
    reports = [r for img, o in zip(_images(rng, 800), outs + outs, strict=False) if (r := tel.observe(img, o))]
    last = reports[-1]
    assert last["state"] == "ok", last
    assert all(f["psi"] < 0.1 for f in last["features"].values())
    assert not events
    dark = _images(rng, 800, mean=70.0)
    reports = [r for img, o in zip(dark, outs + outs, strict=False) if (r := tel.observe(img, o))]
    last = reports[-1]
    assert last["features"]["brightness"]["psi"] > 0.25 and last["features"]["brightness"]["state"] == "alert"
    assert last["features"]["class"]["state"] == "ok"
    assert [e["state"] for e in events if e["feature"] == "brightness"][-1] == "alert"
    back = [r for img, o in zip(_images(rng, 800), outs + outs, strict=False) if (r := tel.observe(img, o))]
    assert back[-1]["features"]["brightness"]["state"] == "ok"
    states = [e["state"] for e in events if e["feature"] == "brightness"]
    assert states[-1] == "ok"
    tel.close()


def test_class_frequency_drift_uses_chi_square(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    imgs = _images(rng, 50)
    outs = [np.eye(3)[i % 3] * 0.9 + 0.033 for i in range(300)]
    profile = build_reference_profile(imgs * 6, "image", outputs=outs, labels=["a", "b", "c"])
    tel = _tel(tmp_path, profile, EventBus())
    skew = [np.eye(3)[0] * 0.9 + 0.033] * 400
    reps = [r for i, o in enumerate(skew) if (r := tel.observe(imgs[i % 50], o))]
    cls = reps[-1]["features"]["class"]
    assert cls["state"] == "alert" and cls["p"] < 1e-6 and cls["chi2"] > 100
    tel.close()


def _model_folder(folder: Path) -> Path:
    """A real model folder (fp32 tiny conv net + manifest.json); returns the manifest's path."""
    from sdk.models.builtin import tiny_convnet
    from sdk.models.variants import make_model_folder

    make_model_folder(folder, tiny_convnet(folder / "src.onnx", input_hw=(16, 16)), "m", tiers=("fp32",))
    return folder / "manifest.json"


def test_profile_roundtrip_and_manifest_embedding(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    profile = build_reference_profile(_images(rng, 100), "image")
    p = profile.save(tmp_path / "profile.json")
    with pytest.raises(TelemetryError, match="cannot write the reference profile"):
        profile.save(tmp_path / "no_such_folder" / "profile.json")
    again = ReferenceProfile.load(p)
    assert again.features == profile.features and again.kind == "image"
    manifest = _model_folder(tmp_path)
    with pytest.raises(TelemetryError, match="empty reference_profile"):
        ReferenceProfile.load(tmp_path)
    embed_in_manifest(profile, manifest)
    assert json.loads(manifest.read_text())["name"] == "m"
    assert ReferenceProfile.load(tmp_path).features == profile.features
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text(json.dumps({"schema_version": 1, "name": "m"}))
    with pytest.raises(TelemetryError, match="missing required key 'variants'"):
        embed_in_manifest(profile, tmp_path / "broken")
    (tmp_path / "bad.json").write_text(json.dumps({"format": "ember-reference-profile", "kind": "image"}))
    with pytest.raises(TelemetryError, match="malformed"):
        ReferenceProfile.load(tmp_path / "bad.json")


def test_profile_data_command(tmp_path: Path) -> None:
    import cv2

    from sdk.cli import main

    rng = np.random.default_rng(4)
    for i, img in enumerate(_images(rng, 12)):
        cv2.imwrite(str(tmp_path / f"{i}.png"), img)
    manifest = _model_folder(tmp_path / "model")
    out = tmp_path / "p.json"
    assert main(["profile-data", "--kind", "image", "--data", str(tmp_path), "--out", str(out),
                 "--manifest", str(manifest)]) == 0
    prof = ReferenceProfile.load(out)
    assert prof.items == 12 and set(prof.features) == {"brightness", "contrast", "sharpness"}
    assert ReferenceProfile.load(manifest).items == 12
    assert main(["profile-data", "--kind", "audio", "--data", str(tmp_path), "--out", str(out)]) == 2
