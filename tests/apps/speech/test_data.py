"""Reading clips: stereo, 44.1 kHz, 8-bit, short clips are converted; empty or broken files are clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from apps.speech.data import CLIP, fit, list_clips, read_audio, speaker_of, split_of
from sdk.errors import SourceError


def tone(rate: int, seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_stereo_44k_is_mixed_down_and_resampled(tmp_path):
    x = tone(44100, 1.0)
    sf.write(tmp_path / "s.wav", np.stack([x, x], axis=1), 44100, subtype="PCM_16")
    pcm = read_audio(tmp_path / "s.wav")
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    assert abs(len(pcm) - 16000) <= 2
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64)))
    assert abs(np.argmax(spectrum) * 16000 / len(pcm) - 440) < 3  # same pitch after resampling
    assert 0.45 * 32768 < np.abs(pcm).max() < 0.55 * 32768


def test_8bit_and_float_files(tmp_path):
    sf.write(tmp_path / "u8.wav", tone(16000, 0.5), 16000, subtype="PCM_U8")
    sf.write(tmp_path / "f.wav", tone(8000, 0.5), 8000, subtype="FLOAT")
    u8, f = read_audio(tmp_path / "u8.wav"), read_audio(tmp_path / "f.wav")
    assert len(u8) == 8000 and 0.45 * 32768 < np.abs(u8).max() < 0.55 * 32768
    assert abs(len(f) - 8000) <= 2


def test_short_clip_is_padded_and_long_one_cropped(tmp_path):
    sf.write(tmp_path / "short.flac", tone(16000, 0.3), 16000)
    pcm = read_audio(tmp_path / "short.flac")
    out = fit(pcm)
    assert len(out) == CLIP and np.count_nonzero(out) > 4000 and out[0] == 0 and out[-1] == 0
    assert len(fit(np.ones(20000, np.int16))) == CLIP


@pytest.mark.parametrize("make, match", [
    (lambda p: p.write_bytes(b""), "not a readable audio file"),
    (lambda p: p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt "), "not a readable audio file"),
    (lambda p: sf.write(p, np.zeros(0, np.float32), 16000), "only 0 samples"),
])
def test_empty_and_broken_files_are_clear_errors(tmp_path, make, match):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(SourceError, match=match):
        read_audio(path)


def test_truncated_file_is_read_or_a_clear_error(tmp_path):
    sf.write(tmp_path / "full.wav", tone(16000, 1.0), 16000, subtype="PCM_16")
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    try:
        pcm = read_audio(tmp_path / "cut.wav")
    except SourceError as e:
        assert "cut.wav" in str(e)
    else:
        assert 0 < len(pcm) <= 16000


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        read_audio(tmp_path / "nope.wav")
    with pytest.raises(SourceError, match="data folder not found"):
        list_clips(tmp_path / "nope")
    (tmp_path / "other").mkdir()
    with pytest.raises(SourceError, match="no audio clips in label sub-folders"):
        list_clips(tmp_path)


def test_listing_labels_speakers_and_splits(tmp_path):
    for folder, name in (("yes", "abc123_nohash_0.wav"), ("_unknown_", "bed_abc123_nohash_1.wav"),
                         ("_silence_", "17.wav"), ("notalabel", "x.wav")):
        (tmp_path / folder).mkdir()
        sf.write(tmp_path / folder / name, tone(16000, 1.0), 16000)
    clips = list_clips(tmp_path)
    assert [(c.label, c.speaker, c.word) for c in clips] == [
        ("silence", "17", "silence"), ("unknown", "abc123", "bed"), ("yes", "abc123", "yes")]
    assert speaker_of(tmp_path / "go_x_nohash_0.flac") == "x"
    parts = [split_of(f"speaker{i}") for i in range(2000)]
    assert 0.17 < parts.count("val") / 2000 < 0.23 and 0.07 < parts.count("select") / 2000 < 0.13
    assert split_of("abc123") == split_of("abc123")
