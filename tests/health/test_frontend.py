"""Streaming integer QRS detector, beat windows and RR features."""

from __future__ import annotations

import numpy as np
import pytest

from apps.health.features import LEN, BeatStream, RrTracker, beat_inputs, model_input
from apps.health.frontend import RATE, QrsDetector, detect, filter_stages, to_units
from apps.health.records import match, read_record
from sdk.sources.ecg import synthetic_ecg


def test_synthetic_beats_found_at_their_times() -> None:
    rec = synthetic_ecg(60, rate=RATE, hr=75, ectopic=0.1, atrial=0.05, noise=0.02, seed=3)
    det = detect(to_units(rec.signal))
    i_ref, i_det = match(rec.samples, det)
    assert len(i_ref) >= len(rec.samples) - 1          # the first beat may fall in the learning period
    assert len(det) - len(i_det) == 0                  # no false detections
    assert np.abs(det[i_det] - rec.samples[i_ref]).max() <= 10    # R peak within 28 ms (wide V beats peak late)


def test_result_does_not_depend_on_chunking() -> None:
    x = to_units(synthetic_ecg(40, hr=110, ectopic=0.2, seed=5).signal)
    whole = beat_inputs(x, chunk=len(x))
    pieces = beat_inputs(x, chunk=37)
    assert [b.r for b in whole] == [b.r for b in pieces]
    assert all(np.array_equal(a.window, b.window) and np.array_equal(a.rr, b.rr)
               and np.array_equal(a.template, b.template) for a, b in zip(whole, pieces))


def test_filters_are_integer_and_start_from_a_constant_history() -> None:
    x = np.full(600, 77, np.int64)
    out = filter_stages(x)
    assert all(v.dtype == np.int64 and not v.any() for v in out.values())   # constant input: all zero


def test_flat_signal_gives_no_beats() -> None:
    det = QrsDetector()
    assert det.process(np.zeros(RATE * 10, np.int32)) == []


def test_rr_features_are_integer_ratios() -> None:
    rr = RrTracker()
    f = rr.features(360, 180)
    assert f.tolist() == [360, 180, 360, 360, 256, 128, 256, 128]
    f = rr.features(180, 360)                   # local mean now (360 + 180) // 2 = 270
    assert f[2] == 270 and f[4] == (180 << 8) // 270 and f[7] == 512


def test_model_input_layout() -> None:
    x = model_input(np.full((2, LEN), 200), np.zeros((2, LEN)), np.tile([360, 360, 360, 360, 256, 256, 256, 256], (2, 1)))
    assert x.shape == (2, 3, LEN) and x.dtype == np.float32
    assert np.allclose(x[:, 0], 1.0) and np.allclose(x[:, 2], 1.0)


def test_beat_stream_emits_each_beat_once_with_next_rr() -> None:
    rec = synthetic_ecg(30, hr=60, hrv=0.0, seed=1)
    bs = BeatStream()
    beats = bs.process(to_units(rec.signal)) + bs.flush()
    r = [b.r for b in beats]
    assert len(r) == len(set(r)) and r == sorted(r)
    assert all(abs(b.rr[1] - RATE) <= 20 for b in beats[1:-1])      # next RR ≈ 1 s at 60 bpm (± sinus arrhythmia)
    assert all(b.rr[0] == b2.rr[1] for b, b2 in zip(beats[1:], beats[:-1]))   # prev RR = the last beat's next RR


@pytest.mark.parametrize("name", ["118", "208"])
def test_detector_on_mitbih_records(shared_data, name: str) -> None:
    rec = read_record(shared_data / "mitbih" / name)
    n = 5 * 60 * RATE
    det = detect(to_units(rec.signal[:n]))
    ref = rec.beats[rec.beats < n - RATE]       # the last second may still be in flight
    i_ref, _ = match(ref, det[det < n - RATE])
    assert len(i_ref) / len(ref) >= 0.995
    assert len(i_ref) / len(det[det < n - RATE]) >= 0.995
