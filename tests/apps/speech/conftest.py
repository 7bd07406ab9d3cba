"""Fixtures: the bundled recording cut into its labelled clips (real Speech Commands audio, no shared data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from apps.speech.live import SAMPLE

# keywords.flac = 0.5 s of background, then nine 1 s clips each followed by 0.5 s (samples/ATTRIBUTION.md)
SAMPLE_LABELS = ["yes", "stop", "unknown", "left", "go", "no", "silence", "right", "off"]


@pytest.fixture(scope="session")
def sample_pcm() -> np.ndarray:
    pcm, rate = sf.read(SAMPLE, dtype="int16")
    assert rate == 16000
    return pcm


@pytest.fixture(scope="session")
def sample_clips(sample_pcm) -> list[tuple[str, np.ndarray]]:
    """(label, 1 s int16 clip) of each clip in the bundled recording."""
    return [(label, sample_pcm[8000 + i * 24000: 8000 + i * 24000 + 16000]) for i, label in enumerate(SAMPLE_LABELS)]


@pytest.fixture(scope="session")
def sample_folder(tmp_path_factory, sample_clips) -> Path:
    """A Speech Commands-like folder (one sub-folder per label) made from the bundled clips."""
    root = tmp_path_factory.mktemp("speech_data")
    for i, (label, clip) in enumerate(sample_clips):
        folder = root / {"unknown": "_unknown_", "silence": "_silence_"}.get(label, label)
        folder.mkdir(exist_ok=True)
        sf.write(folder / f"spk{i}_nohash_0.wav", clip, 16000, subtype="PCM_16")
    return root

