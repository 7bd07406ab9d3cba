"""Audio files (WAV, FLAC via soundfile), resampling, chunking, and the microphone when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sdk.errors import SourceError
from sdk.sources import open_source
from sdk.sources.audio import Chunker
from sdk.sources.resample import Resampler, resample


def _write(path: Path, data: np.ndarray, rate: int) -> Path:
    import soundfile as sf

    sf.write(str(path), data, rate)
    return path


def test_wav_chunks_are_the_file_samples(tmp_path: Path, sine_wave) -> None:  # type: ignore[no-untyped-def]
    data = sine_wave(16000, 2.3)
    wav = _write(tmp_path / "a.wav", data, 16000)
    with open_source(f"file://{wav}?chunk_ms=1000&hop_ms=500") as src:
        items = list(src)
    starts = [i.meta["start_s"] for i in items]
    assert starts == [0.0, 0.5, 1.0, 1.5]
    assert [i.meta["padded"] for i in items] == [0, 0, 0, 3200]
    assert all(i.data.shape == (16000, 1) and i.data.dtype == np.float32 for i in items)
    np.testing.assert_allclose(items[1].data, data[8000:24000], atol=1e-4)  # 16-bit WAV
    np.testing.assert_allclose(items[3].data[:12800], data[24000:], atol=1e-4)
    assert not items[3].data[12800:].any()
    meta = items[0].meta
    assert meta["rate"] == 16000 and meta["channels"] == 1 and meta["live"] is False and meta["kind"] == "audio"


@pytest.mark.parametrize("rate", [44100, 48000])
def test_flac_resampled_to_16k(tmp_path: Path, sine_wave, rate: int) -> None:  # type: ignore[no-untyped-def]
    flac = _write(tmp_path / "b.flac", sine_wave(rate, 1.0, freq=1000, channels=2), rate)
    with open_source(str(flac), rate=16000, channels=1, chunk_ms=250) as src:
        items = list(src)
    assert src.meta["source_rate"] == rate and src.meta["rate"] == 16000
    signal = np.concatenate([i.data[:, 0] for i in items])
    assert len(items) == 4 and signal.shape == (16000,)
    t = np.arange(16000) / 16000
    expected = 0.375 * np.sin(2 * np.pi * 1000 * t)  # mono mix of channels with amplitude 0.25 and 0.5
    np.testing.assert_allclose(signal[100:-100], expected[100:-100], atol=2e-3)


def test_wrong_rate_without_resampling_is_an_error(tmp_path: Path, sine_wave) -> None:  # type: ignore[no-untyped-def]
    wav = _write(tmp_path / "c.wav", sine_wave(44100, 0.2), 44100)
    src = open_source(f"file://{wav}?rate=16000&resample=false")
    with pytest.raises(SourceError, match="44100 Hz but rate=16000") as e:
        src.open()
    assert "resample" in e.value.hint
    with pytest.raises(SourceError, match="channels=3"):
        open_source(str(wav), channels=3).open()


def test_corrupt_audio_file(tmp_path: Path) -> None:
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(SourceError, match="cannot read noise.wav as audio"):
        open_source(str(bad)).open()


def test_realtime_file_is_paced_like_a_mic(tmp_path: Path, sine_wave) -> None:  # type: ignore[no-untyped-def]
    import time

    wav = _write(tmp_path / "d.wav", sine_wave(16000, 0.5), 16000)
    with open_source(str(wav), chunk_ms=100, realtime=True) as src:
        t0 = time.monotonic()
        n = sum(1 for _ in src)
        elapsed = time.monotonic() - t0
    assert n == 5 and elapsed >= 0.4 * 0.9  # five 100 ms chunks: at least 0.4 s between first and last


def test_resampler_streaming_equals_whole_and_rejects_aliases(sine_wave) -> None:  # type: ignore[no-untyped-def]
    x = sine_wave(48000, 0.5, freq=1000)
    whole = resample(x, 48000, 16000)
    r = Resampler(48000, 16000)
    parts = [r.process(x[i:i + 777]) for i in range(0, len(x), 777)] + [r.flush()]
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-6)
    assert whole.shape == (8000, 1)
    alias = resample(sine_wave(48000, 0.5, freq=10000), 48000, 16000)  # above the new Nyquist
    assert np.sqrt(np.mean(alias[200:-200] ** 2)) < 1e-3
    lin = resample(x, 48000, 16000, mode="linear")
    assert lin.shape == whole.shape
    with pytest.raises(ValueError):
        Resampler(16000, 8000, mode="cubic")


@pytest.mark.parametrize("mode", ["sinc", "linear"])
@pytest.mark.parametrize("rates", [(44100, 16000), (8000, 16000), (22050, 16000)])
@pytest.mark.parametrize("block", [1, 7, 4096])
def test_resampler_any_block_size(mode: str, rates: tuple[int, int], block: int) -> None:
    fin, fout = rates
    x = (np.arange(fin // 20, dtype=np.float32) / fin)[:, None]  # a ramp: value = time in seconds
    r = Resampler(fin, fout, mode)
    y = np.concatenate([r.process(x[i:i + block]) for i in range(0, len(x), block)] + [r.flush()])[:, 0]
    assert len(y) == -(-len(x) * fout // fin)
    np.testing.assert_allclose(y[40:-40], np.arange(len(y))[40:-40] / fout, atol=1e-4)


def test_chunker_hop_larger_than_chunk() -> None:
    c = Chunker(size=3, hop=5)
    out = c.push(np.arange(12, dtype=np.float32)[:, None])
    assert [(s, w[:, 0].tolist()) for w, s in out] == [(0, [0, 1, 2]), (5, [5, 6, 7])]
    window, start, padded = c.finish()
    assert (start, padded, window[:, 0].tolist()) == (10, 1, [10, 11, 0])
    assert c.finish() is None


_VIRTUAL_MIC = """
pcm.virtmic {
    type plug
    slave {
        pcm { type file  slave.pcm "null"  file "/dev/null"  infile "%s"  format "raw" }
        format S16_LE
        rate 16000
        channels 1
    }
}
"""

_MIC_SCRIPT = """
import json, sys, time
import numpy as np
from sdk.sources import open_source
out = {}
with open_source("mic://virtmic?rate=16000&chunk_ms=250", buffer_s=60) as src:
    items = [item for _, item in zip(range(4), src)]
    out["first"] = np.concatenate([i.data[:, 0] for i in items]).tolist()
    out["meta"] = {k: v for k, v in items[0].meta.items() if k in ("live", "rate", "kind", "device_name")}
    out["seq"] = [i.seq for i in items]
with open_source("mic://virtmic?rate=16000&chunk_ms=100", buffer_s=0.3) as src:
    it = iter(src)
    next(it)
    time.sleep(0.5)  # a consumer that stalls: the 0.3 s ring overflows
    out["gap"] = sum(next(it).meta["gap"] for _ in range(3))
    out["overflows"] = src.stats.overflows
print(json.dumps(out))
"""


def _sounddevice():  # type: ignore[no-untyped-def]
    """sounddevice, or a skip that fails in CI: a missing package is not missing hardware
    (``.ci/system-deps.sh`` installs libportaudio2, which brings ALSA's ``file`` PCM with it)."""
    try:
        import sounddevice
    except (ImportError, OSError) as e:
        pytest.skip(f"package missing: sounddevice with PortAudio (pip install sounddevice; "
                    f"apt install libportaudio2): {e}")
    return sounddevice


def test_microphone_with_alsa_virtual_device(tmp_path: Path) -> None:
    """A real PortAudio capture stream from an ALSA ``file`` PCM (the kernel needs no sound card)."""
    import json
    import os
    import subprocess
    import sys

    _sounddevice()
    t = np.arange(16000 * 2) / 16000
    (0.5 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2").tofile(tmp_path / "in.raw")
    (tmp_path / ".asoundrc").write_text(_VIRTUAL_MIC % (tmp_path / "in.raw"))
    env = {**os.environ, "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", _MIC_SCRIPT], check=False, env=env, capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(out["first"], 0.5 * np.sin(2 * np.pi * 440 * t[:16000]), atol=2e-4)
    assert out["meta"] == {"live": True, "rate": 16000, "kind": "microphone", "device_name": "virtmic"}
    assert out["seq"] == [0, 1, 2, 3]
    assert out["overflows"] > 0 and out["gap"] > 0


def test_microphone_through_sounddevice() -> None:
    sd = _sounddevice()
    if not any(d["max_input_channels"] > 0 for d in sd.query_devices()):
        pytest.skip("hardware: no microphone (PortAudio lists no input device)")
    with open_source("mic://default?rate=16000&chunk_ms=200") as src:
        item = next(iter(src))
    assert item.data.shape == (3200, 1) and item.meta["live"] is True


def test_missing_microphone_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="no such microphone|PortAudio"):
        open_source("mic://no-such-device-xyz").open()


def test_microphone_that_fails_to_start_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A PortAudio stream that is created but cannot start is closed, and the error is a SourceError.
    (The sound card is the only thing faked: no real device fails on demand.)"""
    sd = _sounddevice()
    streams = []

    class FailingStream:
        def __init__(self, **kwargs: object) -> None:
            self.closed = False
            streams.append(self)

        def start(self) -> None:
            raise sd.PortAudioError("Device unavailable")

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr(sd, "query_devices", lambda *a, **k: {"name": "fake", "max_input_channels": 1,
                                                               "default_samplerate": 16000.0})
    monkeypatch.setattr(sd, "check_input_settings", lambda **k: None)
    monkeypatch.setattr(sd, "InputStream", FailingStream)
    src = open_source("mic://fake?rate=16000")
    with pytest.raises(SourceError, match="cannot start recording: Device unavailable"):
        src.open()
    assert len(streams) == 1 and streams[0].closed
