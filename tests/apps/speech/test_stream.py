"""Streaming logic on synthetic posteriors and audio: smoothing, threshold, refractory, gate, windows."""

from __future__ import annotations

import numpy as np
import pytest

from apps.speech.data import LABELS
from apps.speech.evaluate import build_stream, decide, score_keywords, score_negatives
from apps.speech.stream import Smoother, StreamSettings, Windower, as_int16, loudness
from sdk.errors import ConfigError
from sdk.features.kws import KwsFrontend

KW = [w for w in LABELS if w not in ("unknown", "silence")]


def post(label: str, p: float) -> np.ndarray:
    """Posteriors with ``p`` on ``label`` and the rest spread over the others."""
    out = np.full(len(LABELS), (1 - p) / (len(LABELS) - 1), np.float32)
    out[LABELS.index(label)] = p
    return out


def run(seq: list[np.ndarray | None], settings: StreamSettings, keywords: list[str] = KW, hop: float = 0.2):
    sm = Smoother(LABELS, keywords, settings)
    return [d for i, p in enumerate(seq) if (d := sm.push(p, 1.0 + i * hop)) is not None]


def test_one_utterance_gives_one_detection_with_refractory():
    seq = [post("silence", 0.9)] * 3 + [post("yes", 0.95)] * 5 + [post("silence", 0.9)] * 3
    found = run(seq, StreamSettings(threshold=0.7, smooth=2, refractory_s=1.0))
    assert [d.keyword for d in found] == ["yes"]
    assert found[0].time_s == pytest.approx(1.0 + 4 * 0.2)  # the 2nd 'yes' window lifts the average over 0.7
    assert found[0].confidence == pytest.approx(0.95)
    again = run(seq, StreamSettings(threshold=0.7, smooth=1, refractory_s=0.0))
    assert len(again) == 5  # without a refractory period every window above the threshold fires


def test_smoothing_suppresses_a_single_spike():
    seq = [post("unknown", 0.8)] * 3 + [post("go", 0.9)] + [post("unknown", 0.8)] * 3
    assert run(seq, StreamSettings(threshold=0.7, smooth=3)) == []
    assert [d.keyword for d in run(seq, StreamSettings(threshold=0.7, smooth=1))] == ["go"]


def test_threshold_and_non_keywords():
    seq = [post("stop", 0.65)] * 4 + [post("unknown", 0.99)] * 4 + [post("silence", 0.99)] * 4
    assert run(seq, StreamSettings(threshold=0.7, smooth=1)) == []  # unknown/silence never detected
    assert [d.keyword for d in run(seq, StreamSettings(threshold=0.6, smooth=1))] == ["stop"]


def test_keyword_restriction_and_gated_windows():
    seq = [post("no", 0.95)] * 3 + [None] * 5 + [post("yes", 0.95)] * 3
    found = run(seq, StreamSettings(threshold=0.7, smooth=2), keywords=["yes"])
    assert [d.keyword for d in found] == ["yes"]
    # a gated window counts as "nothing": it pulls the average down like silence
    assert run([post("yes", 0.95), None, post("yes", 0.95), None], StreamSettings(threshold=0.7, smooth=2)) == []


def test_settings_are_checked():
    for bad in ({"threshold": 0}, {"threshold": 1.5}, {"smooth": 0}, {"hop_ms": 5}, {"gate": 300},
                {"refractory_s": -1}):
        with pytest.raises(ConfigError, match="speech stream: bad"):
            StreamSettings(**bad).check()


def test_windower_is_bit_exact_with_the_offline_front_end():
    fe = KwsFrontend()
    rng = np.random.default_rng(3)
    audio = (rng.standard_normal(16000 * 3) * 2000).astype(np.int16)
    w = Windower(fe, 49, 10)
    got = []
    for start in range(0, len(audio), 777):  # odd chunk size: frames straddle chunk boundaries
        got += w.push(audio[start:start + 777])
    assert len(got) == 1 + (fe.frames_for(len(audio)) - 49) // 10
    for end_s, feats in got:
        last = round(end_s * 16000)
        assert np.array_equal(feats, fe(audio[last - fe.samples_for(49):last]))
    assert got[0][0] == pytest.approx(fe.samples_for(49) / 16000)
    assert got[1][0] - got[0][0] == pytest.approx(0.2)


def test_loudness_orders_quiet_and_loud_audio():
    fe = KwsFrontend()
    rng = np.random.default_rng(0)
    quiet, loud = (fe((rng.standard_normal(16000) * a).astype(np.int16)) for a in (10, 3000))
    assert loudness(quiet) < loudness(loud)
    assert loudness(fe(np.zeros(16000, np.int16))) == 0


def test_as_int16_accepts_float_stereo_and_rejects_other_types():
    stereo = np.stack([np.full(100, 0.5, np.float32), np.full(100, -0.5, np.float32)], axis=1)
    assert np.array_equal(as_int16(stereo), np.zeros(100, np.int16))
    assert as_int16(np.full(10, 0.5, np.float32))[0] == 16384
    with pytest.raises(ConfigError, match="int16 or float"):
        as_int16(np.zeros(10, np.int32))
    with pytest.raises(ConfigError, match="samples, channels"):
        as_int16(np.zeros((2, 2, 2), np.float32))


def test_stream_scoring_counts_hits_misses_and_false_accepts():
    rng = np.random.default_rng(0)
    clips = [np.full(16000, 1000, np.int16), np.full(16000, -1000, np.int16)]
    s = build_stream(clips, ["yes", "no"], [], rng, gap_s=(1.0, 1.0))
    assert [e[0] for e in s.events] in (["yes", "no"], ["no", "yes"])
    assert s.events[1][1] - s.events[0][2] == pytest.approx(1.0)
    (w1, _a1, b1), (w2, _a2, b2) = s.events
    times = np.array([b1 - 0.1, b2 + 3.0])
    probs = [post(w1, 0.99), post(w2, 0.99)]
    found = decide(times, probs, np.full(2, 100.0), LABELS, KW, StreamSettings(threshold=0.5, smooth=1))
    score = score_keywords(s, found)
    assert score == {"keywords": 2, "missed": 1, "miss_rate": 0.5, "wrong_detections": 1}
    neg = score_negatives(s, found)
    assert neg["false_accepts"] == 2 and neg["false_accepts_per_hour"] == pytest.approx(2 / s.hours)


def test_vectorised_decisions_match_the_streaming_smoother():
    rng = np.random.default_rng(5)
    n = 400
    probs = [rng.dirichlet(np.full(len(LABELS), 0.3)).astype(np.float32) for _ in range(n)]
    loud = rng.uniform(0, 100, n)
    times = 1.0 + 0.2 * np.arange(n)
    for settings in (StreamSettings(threshold=0.5, smooth=1), StreamSettings(threshold=0.25, smooth=3, gate=30),
                     StreamSettings(threshold=0.3, smooth=2, refractory_s=0.0)):
        seq = [None if settings.gate and level < settings.gate else p for p, level in zip(probs, loud)]
        want = run(seq, settings)
        got = decide(times, probs, loud, LABELS, KW, settings)
        assert len(want) > 3
        assert [(d.keyword, d.time_s) for d in got] == [(d.keyword, d.time_s) for d in want]
        assert np.allclose([d.confidence for d in got], [d.confidence for d in want], atol=1e-5)
