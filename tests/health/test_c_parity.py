"""The ECG front end in C (``ember export-c --frontend ecg``) against the Python app: the same beats,
sample for sample, the same features and the same classes, on the host and on a Cortex-M4 (qemu)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from apps.health.app import SAMPLE
from apps.health.classifier import MODEL_DIR, BeatClassifier
from apps.health.features import model_input
from apps.health.frontend import to_units
from apps.health.records import read_record
from firmware_export.frontend import ecg
from firmware_export.tflite_model import load
from sdk.cli import main
from sdk.sources.ecg import synthetic_ecg

pytestmark = pytest.mark.slow     # C builds (host and arm-none-eabi) and qemu


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    return to_units(read_record(SAMPLE).signal).astype(np.int16)


def test_host_beats_and_features_match_python(sample: np.ndarray, need) -> None:
    need("gcc")
    synth = to_units(synthetic_ecg(90, hr=140, ectopic=0.15, atrial=0.1, noise=0.05, seed=4).signal).astype(np.int16)
    res = ecg.verify_host({"sample": sample, "synthetic": synth, "flat": np.zeros(5000, np.int16)})
    assert res["beats_match"] and res["features_match"], res
    assert res["streams"]["sample"]["beats_c"] > 80 and res["streams"]["flat"]["beats_c"] == 0


def test_host_matches_python_on_a_whole_record(shared_data: Path, need) -> None:
    need("gcc")
    x = to_units(read_record(shared_data / "mitbih" / "203").signal).astype(np.int16)   # noisy, multiform PVCs
    res = ecg.verify_host({"203": x})
    assert res["beats_match"] and res["features_match"] and res["streams"]["203"]["beats_c"] > 2800


def test_cortex_m4_under_qemu_matches_python(sample: np.ndarray, need) -> None:
    need("arm-none-eabi-gcc")
    need("qemu-system-arm")
    res = ecg.verify_qemu(sample[:360 * 15])
    assert res["ok"], res
    assert res["output"].startswith("ecg-verify: OK") and int(res["output"].split()[2]) >= 20


def test_exported_classifier_gives_python_classes(sample: np.ndarray, tmp_path: Path, need) -> None:
    need("gcc")
    tfl = MODEL_DIR / "model.int8.tflite"
    assert main(["export-c", str(tfl), "--out", str(tmp_path / "exp"), "--name", "health_beats",
                 "--frontend", "ecg"]) == 0
    assert "ember_ecg_quantize" in (tmp_path / "exp" / "README.md").read_text()
    scale, zp = ecg.input_quant(load(tfl.read_bytes()))
    r, out = ecg.run_exported(tmp_path / "exp", "health_beats", sample, scale, zp)
    py = ecg.python_beats(sample)
    assert np.array_equal(r, py["r"])
    clf = BeatClassifier(tier="int8", backend="litert")
    try:
        p = clf.probabilities(model_input(py["window"], py["template"], py["rr"]))
    finally:
        clf.close()
    assert np.array_equal(p.argmax(1), out.argmax(1))


def test_frontend_ecg_rejects_a_model_that_is_not_a_beat_classifier(tmp_path: Path, capsys) -> None:
    from firmware_export.sample_models import conv1d_net, to_int8

    tfl = to_int8(conv1d_net(tmp_path / "m.onnx"), tmp_path / "m.tflite", [1, 4, 64])   # a 1-D net, not ours
    assert main(["export-c", str(tfl), "--out", str(tmp_path / "e"), "--frontend", "ecg"]) == 2
    assert "--frontend ecg needs an int8 model input" in capsys.readouterr().err
