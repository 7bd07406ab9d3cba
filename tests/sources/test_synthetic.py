"""Synthetic ECG, video and tone sources."""

from __future__ import annotations

import numpy as np
import pytest

from sdk.errors import SourceError
from sdk.sources import open_source
from sdk.sources.ecg import EcgGenerator, synthetic_ecg


def test_ecg_source_matches_function_and_is_block_size_independent() -> None:
    rec = synthetic_ecg(20, rate=250, hr=80, ectopic=0.1, seed=7)
    with open_source("synthetic://ecg?rate=250&hr=80&ectopic=0.1&seed=7&duration=20&block=37") as src:
        items = list(src)
        samples, symbols = src.annotations()
    signal = np.concatenate([i.data[:, 0] for i in items])
    np.testing.assert_allclose(signal, rec.signal, atol=1e-6)
    assert samples.tolist() == rec.samples.tolist() and symbols == rec.symbols
    assert items[0].meta["rate"] == 250 and items[0].meta["live"] is False and items[-1].data.shape == (20 * 250 % 37, 1)
    other = synthetic_ecg(20, rate=250, hr=80, ectopic=0.1, seed=8)
    assert not np.allclose(other.signal, rec.signal)


def test_ecg_rate_rhythm_and_peaks() -> None:
    rec = synthetic_ecg(120, rate=360, hr=60, ectopic=0.15, noise=0.0, wander=0.0, seed=1)
    n = len(rec.symbols)
    assert 105 <= n <= 135  # about 60 beats per minute for two minutes
    v = rec.symbols.count("V")
    assert 0.05 * n < v < 0.3 * n  # about 15 % premature ventricular beats
    rr = np.diff(rec.samples) / rec.rate
    pre_v = [rr[i - 1] for i in range(1, n) if rec.symbols[i] == "V" and rec.symbols[i - 1] == "N"]
    assert np.mean(pre_v) < 0.8 * np.median(rr)  # PVCs come early
    for s, sym in zip(rec.samples, rec.symbols):
        if sym == "N" and 20 < s < len(rec.signal) - 20:
            window = rec.signal[s - 20:s + 21]
            assert abs(int(np.argmax(window)) - 20) <= 2  # the annotation sits on the R peak


def test_ecg_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        EcgGenerator(hr=400)
    with pytest.raises(SourceError, match="heart rate"):
        open_source("synthetic://ecg?hr=5").open()


def test_synthetic_video_box_ground_truth() -> None:
    with open_source("synthetic://video?pattern=box&width=160&height=120&size=20", frames=4) as src:
        items = list(src)
    assert len(items) == 4 and items[0].data.shape == (120, 160, 3)
    for item in items:
        x, y, w, h = item.meta["box"]
        red = (item.data[..., 2] == 255) & (item.data[..., 0] == 0)
        ys, xs = np.nonzero(red)
        assert (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1) == (x, y, w, h)
    with pytest.raises(SourceError, match="unknown pattern"):
        open_source("synthetic://video?pattern=plaid")


def test_synthetic_tone_frequency() -> None:
    with open_source("synthetic://tone?freq=1000&rate=8000&chunk_ms=500&duration=1") as src:
        items = list(src)
    assert [i.meta["start_s"] for i in items] == [0.0, 0.5]
    spectrum = np.abs(np.fft.rfft(items[0].data[:, 0]))
    assert np.argmax(spectrum) * 8000 / 4000 == pytest.approx(1000)
