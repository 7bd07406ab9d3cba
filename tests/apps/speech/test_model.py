"""The shipped model: every tier and backend loads and agrees; the spotter finds the words of real recordings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from apps.speech.data import LABELS, fit, list_clips, read_audio, split_of
from apps.speech.spotter import MODEL_DIR, KeywordSpotter, input_table, load_settings, model_input, softmax
from sdk.errors import ConfigError, ModelError
from sdk.features.kws import KwsFrontend
from sdk.models.manifest import Manifest
from sdk.models.store import ModelStore
from sdk.runtime.backends import available_backends, load_backend


@pytest.fixture(scope="module")
def windows(sample_clips) -> tuple[np.ndarray, list[str]]:
    fe = KwsFrontend()
    table = input_table(load_settings(MODEL_DIR))
    return np.stack([model_input(fe(c), table)[0] for _, c in sample_clips]), [label for label, _ in sample_clips]


def test_manifest_has_the_tiers_and_app_settings():
    m = Manifest.load(MODEL_DIR)
    keys = {v.key for v in m.variants}
    assert {("fp32", "onnxruntime"), ("int8", "onnxruntime"), ("fp32", "litert"), ("int8", "litert")} <= keys
    assert m.labels == list(LABELS)
    assert m.reference_profile and m.reference_profile["kind"] == "audio"
    meta = json.loads((MODEL_DIR / "speech.json").read_text())
    assert meta["labels"] == list(LABELS) and 0 < meta["stream"]["threshold"] <= 1
    from firmware_export.tflite_model import load

    int8, fp32 = m.variant("int8", "litert"), m.variant("fp32", "litert")
    assert (MODEL_DIR / int8.file).stat().st_size < 0.5 * (MODEL_DIR / fp32.file).stat().st_size
    tfl = load(MODEL_DIR / int8.file)
    weights = sum(t.data.size for t in tfl.tensors if t.data is not None and t.dtype == "int8")
    assert 10_000 < weights <= 25_000  # int8 parameters (the file adds per-channel scales and zero points)


def test_every_tier_and_backend_gives_the_same_words(windows):
    x, truth = windows
    store = ModelStore(MODEL_DIR)
    results = {}
    for v in store.manifest.variants:
        loaded = store.load(v)  # NCHW in, whatever the backend's layout
        results[v.key] = np.concatenate([loaded.run(w[None])[0].reshape(1, -1) for w in x])
        loaded.close()
    if "tinygrad" in available_backends():
        fp32 = store.manifest.variant("fp32", "onnxruntime")
        backend = load_backend(MODEL_DIR / fp32.file, "tinygrad")
        results[("fp32", "tinygrad")] = np.concatenate([backend.run(w[None])[0].reshape(1, -1) for w in x])
        backend.close()
    ref = results[("fp32", "onnxruntime")]
    assert (ref.argmax(1) == [LABELS.index(t) for t in truth]).mean() >= 7 / 9  # real, unseen speakers
    for key, out in results.items():
        assert out.shape == (len(x), len(LABELS)), key
        assert (out.argmax(1) == ref.argmax(1)).mean() >= 8 / 9, key
        if key[0] == "fp32":
            assert np.allclose(out, ref, atol=1e-3), key


def test_spotter_finds_the_keywords_of_the_bundled_recording(sample_pcm):
    from apps.speech.live import SAMPLE

    spoken = (SAMPLE.parent / "keywords.txt").read_text().split()
    kws = KeywordSpotter.from_folder(tier="int8", backend="onnxruntime")
    found = []
    for start in range(0, len(sample_pcm), 3200):  # 200 ms chunks, as a microphone delivers them
        found += kws.process(sample_pcm[start:start + 3200])
    words = [d.keyword for d in found]
    assert sum(w in spoken for w in words) >= len(spoken) - 1, words
    assert len(words) <= len(spoken) + 1, words
    assert all(0 < d.confidence <= 1 and 0 < d.time_s <= len(sample_pcm) / 16000 for d in found)
    times = [d.time_s for d in found]
    assert times == sorted(times) and min(np.diff(times), default=2.0) >= kws.settings.refractory_s
    stats = kws.stats()
    assert stats["windows"] == 1 + (KwsFrontend().frames_for(len(sample_pcm)) - 49) // 10
    kws.close()


def test_keyword_restriction_and_bad_keyword(sample_pcm):
    kws = KeywordSpotter.from_folder(tier="fp32", backend="onnxruntime", keywords=["yes"])
    words = [d.keyword for d in kws.process(sample_pcm)]
    assert set(words) <= {"yes"} and words, words
    kws.close()
    with pytest.raises(ConfigError, match="unknown keyword"):
        KeywordSpotter.from_folder(keywords=["banana"])
    with pytest.raises(ConfigError, match="threshold"):
        KeywordSpotter.from_folder(threshold=2.0)


def test_not_a_speech_model_folder(tmp_path):
    with pytest.raises(ModelError, match="speech.json"):
        KeywordSpotter.from_folder(tmp_path)


def test_unseen_speakers_from_shared_data(shared_data):
    """Clips of speakers in the validation split (never trained on), 6 per class."""
    clips = [c for c in list_clips(shared_data / "speech_commands") if split_of(c.speaker) == "val"]
    picked = [c for label in LABELS for c in [c for c in clips if c.label == label][:6]]
    kws = KeywordSpotter.from_folder(tier="int8", backend="litert")
    fe = KwsFrontend()
    pred = [LABELS[int(np.argmax(kws.probabilities(fe(fit(read_audio(c.path))))))] for c in picked]
    kws.close()
    acc = np.mean([p == c.label for p, c in zip(pred, picked)])
    assert len(picked) == 72 and acc >= 0.8, acc
    assert np.isclose(softmax(np.array([1.0, 1.0])).sum(), 1.0)


def test_degradation_ladder_on_low_battery(sample_pcm):
    """Battery below 20 % and not charging: fastest tier, then a higher gate, then a longer hop; one
    ``degrade.step`` event each; all released once charging."""
    from apps.speech.live import degrader
    from sdk.events import EventBus
    from sdk.models.manager import ModelManager
    from sdk.testing import FakeClock, ScriptedDevice

    clock, bus = FakeClock(), EventBus()
    device = ScriptedDevice(clock, battery_percent=15.0, charging=False)
    manager = ModelManager(MODEL_DIR, device=device, clock=clock, bus=bus, background=False)
    kws = KeywordSpotter(manager=manager)
    gate, hop = kws.gate, kws.hop_ms
    events = []
    bus.subscribe(lambda e: events.append(e.data) if e.kind == "degrade.step" else None)
    ladder = degrader(kws, budget_ms=1000.0)
    chunk = sample_pcm[:3200]
    for _ in range(200):  # 40 s of audio in 200 ms chunks, the clock moving with it
        ladder(chunk)
        clock.advance(0.2)
    assert [(e["direction"], e["step"]) for e in events] == [("down", "tier"), ("down", "gate"), ("down", "hop")]
    assert kws.gate > gate and kws.hop_ms == 2 * hop
    device.set(charging=True, battery_percent=90.0)
    for _ in range(600):
        ladder(chunk)
        clock.advance(0.2)
    assert [e["direction"] for e in events[3:]] == ["up", "up", "up"]
    assert kws.gate == gate and kws.hop_ms == hop
    kws.close()
