"""Audio: ``mic://default`` / ``mic://<index or name>`` (sounddevice) and ``file://x.wav|.flac``.

Items are float32 chunks [samples, channels] of ``chunk_ms`` every ``hop_ms`` at ``rate`` Hz
(resampled from the device/file rate unless ``resample=false``, which makes a rate mismatch a
``SourceError``). Item meta adds ``start_s`` (position of the first sample in the delivered
audio), ``padded`` (zero samples appended to the last chunk of a file) and, for microphones,
``gap`` (device-rate samples dropped by ring overflows before this chunk).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import SourceError
from sdk.sources.base import BaseSource
from sdk.sources.common import Pacer, require_path
from sdk.sources.resample import Resampler
from sdk.sources.uri import ParsedUri, bounded, optional, options, parse_uri, to_bool

Entry = tuple[Any, float | None, Mapping[str, Any] | None]


def resample_mode(value: Any) -> str | None:
    """``true``/``sinc`` → ``"sinc"``, ``linear`` → ``"linear"``, ``false`` → None (no resampling)."""
    text = str(value).strip().lower()
    if text in ("sinc", "linear"):
        return text
    return "sinc" if to_bool(value) else None


AUDIO_OPTIONS = {
    "rate": (optional(bounded(int, 1000, 768_000)), None),  # output rate; default: the file's/device's
    "channels": (optional(bounded(int, 1, 64)), None),      # 1 mixes down; default: as recorded
    "chunk_ms": (bounded(float, 1.0, 60_000.0), 1000.0),
    "hop_ms": (optional(bounded(float, 1.0, 60_000.0)), None),   # default: chunk_ms (no overlap)
    "resample": (resample_mode, "sinc"),
    "pad": (bool, True),                 # zero-pad the last partial chunk of a file
    "realtime": (bool, False),           # files: deliver at the pace of a live microphone
    "buffer_s": (bounded(float, 0.1, 600.0), 5.0),            # mic: ring buffer length; older audio is dropped (overflows)
}


class Chunker:
    """Cuts a stream of sample blocks into windows of ``size`` samples every ``hop`` samples."""

    def __init__(self, size: int, hop: int) -> None:
        self.size, self.hop = size, hop
        self._buf: np.ndarray | None = None
        self._pos = 0       # stream index of _buf[0]
        self._skip = 0      # samples still to discard (hop > size)
        self._covered = 0   # stream index just past the last emitted window

    def push(self, block: np.ndarray) -> list[tuple[np.ndarray, int]]:
        if self._skip:
            n = min(self._skip, len(block))
            block, self._skip, self._pos = block[n:], self._skip - n, self._pos + n
        self._buf = block if self._buf is None or not len(self._buf) else np.concatenate([self._buf, block])
        out = []
        while len(self._buf) >= self.size:
            out.append((self._buf[: self.size].copy(), self._pos))
            self._covered = self._pos + self.size
            step = min(self.hop, len(self._buf))
            self._skip = self.hop - step
            self._buf, self._pos = self._buf[step:], self._pos + step
        return out

    def finish(self) -> tuple[np.ndarray, int, int] | None:
        """The last partial window, zero-padded, if it holds samples no window covered yet:
        ``(window, start, padded)``."""
        if self._buf is None or not len(self._buf) or self._pos + len(self._buf) <= self._covered:
            return None
        pad = self.size - len(self._buf)
        window = np.concatenate([self._buf, np.zeros((pad, self._buf.shape[1]), self._buf.dtype)])
        self._buf = self._buf[:0]
        return window, self._pos, pad


MAX_CHUNK_VALUES = 1 << 24  # samples x channels in one chunk (64 MiB of float32)


class Shaper:
    """Mix down, resample and chunk raw audio blocks: the shared path of files and microphones."""

    def __init__(self, uri: str, in_rate: int, in_channels: int, opts: Mapping[str, Any]) -> None:
        rate = opts["rate"] or in_rate
        if rate != in_rate and opts["resample"] is None:
            raise SourceError(uri, f"audio is {in_rate} Hz but rate={rate} was asked and resample=false",
                              f"pass rate={in_rate}, or allow resampling (resample=sinc)")
        channels = opts["channels"] or in_channels
        if channels not in (1, in_channels):
            raise SourceError(uri, f"channels={channels} asked but the audio has {in_channels}",
                              f"use channels=1 (mix down) or channels={in_channels}")
        hop_ms = opts["hop_ms"] or opts["chunk_ms"]
        self.size = max(1, round(rate * opts["chunk_ms"] / 1000.0))
        self.hop = max(1, round(rate * hop_ms / 1000.0))
        if self.size * channels > MAX_CHUNK_VALUES:
            raise SourceError(uri, f"a chunk of {opts['chunk_ms']:g} ms at {rate} Hz x {channels} channel(s) is "
                              f"{self.size * channels} samples, over the limit of {MAX_CHUNK_VALUES}",
                              "use a shorter chunk_ms or a lower rate")
        self.rate, self.channels, self.mix = rate, channels, channels != in_channels
        self.resampler = Resampler(in_rate, rate, opts["resample"] or "sinc") if rate != in_rate else None
        self.chunker = Chunker(self.size, self.hop)
        self.meta = {"rate": rate, "channels": channels, "source_rate": in_rate,
                     "chunk_ms": opts["chunk_ms"], "hop_ms": hop_ms, "shape": (self.size, channels)}

    def feed(self, block: np.ndarray) -> list[tuple[np.ndarray, int]]:
        block = np.asarray(block, np.float32)
        if block.ndim == 1:
            block = block[:, None]
        if self.mix:
            block = block.mean(axis=1, keepdims=True)
        if self.resampler is not None:
            block = self.resampler.process(block)
        return self.chunker.push(block)

    def finish(self, pad: bool) -> list[tuple[np.ndarray, int, int]]:
        out = [(c, s, 0) for c, s in (self.chunker.push(self.resampler.flush()) if self.resampler else [])]
        last = self.chunker.finish() if pad else None
        return out + ([last] if last else [])

    def entry(self, chunk: np.ndarray, start: int, ts: float | None, padded: int = 0) -> Entry:
        return chunk, ts, {"start_s": start / self.rate, "padded": padded}


class AudioFileSource(BaseSource):
    """Every chunk of a sound file (soundfile: WAV, FLAC, OGG, …)."""

    kind = "audio"
    block_frames = 8192

    def __init__(self, uri: str, path: Path, opts: Mapping[str, Any]) -> None:
        super().__init__(uri, live=False, path=str(path))
        self.path, self.opts = path, dict(opts)
        self._file: Any = None

    def _open(self) -> None:
        import soundfile as sf

        try:
            f = sf.SoundFile(str(self.path))
        except (RuntimeError, sf.LibsndfileError) as e:
            raise SourceError(self.uri, f"cannot read {self.path.name} as audio: {e}",
                              "use WAV, FLAC or OGG (convert with ffmpeg -i in out.wav)") from None
        try:
            self._shaper = Shaper(self.uri, f.samplerate, f.channels, self.opts)
        except SourceError:
            f.close()
            raise
        self._meta.update(self._shaper.meta, duration_s=f.frames / f.samplerate if f.frames else None)
        self._file = f

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _items(self) -> Iterator[Entry]:
        shaper = self._shaper
        pacer = Pacer(shaper.rate / shaper.hop, self.opts["realtime"], self._closed)
        while self._file is not None and not self._closed.is_set():
            block = self._file.read(self.block_frames, dtype="float32", always_2d=True)
            if not len(block):
                break
            for chunk, start in shaper.feed(block):
                pacer.wait()
                yield shaper.entry(chunk, start, None)
        for chunk, start, padded in shaper.finish(self.opts["pad"]):
            pacer.wait()
            yield shaper.entry(chunk, start, None, padded)


class MicSource(BaseSource):
    """A microphone through PortAudio (sounddevice): a callback fills a bounded ring of blocks;
    when the consumer lags past ``buffer_s`` the oldest audio is dropped (``stats.overflows``)."""

    kind = "microphone"

    def __init__(self, uri: str, device: int | str | None, opts: Mapping[str, Any]) -> None:
        super().__init__(uri, live=True, device=device)
        self.device, self.opts = device, dict(opts)
        self._blocks: deque[tuple[np.ndarray, float]] = deque()
        self._frames = self._lost = self._gap = 0  # _lost/_gap: samples dropped by overflows
        self._cond = threading.Condition()
        self._stream: Any = None

    def _pick_rate(self, sd: Any, info: Mapping[str, Any], channels: int) -> int:
        wanted = self.opts["rate"] or int(info["default_samplerate"])
        try:
            sd.check_input_settings(device=self.device, channels=channels, samplerate=wanted, dtype="int16")
            return wanted
        except Exception:  # noqa: BLE001 - PortAudio says "invalid sample rate" in several ways
            native = int(info["default_samplerate"])
            if self.opts["resample"] is None:
                raise SourceError(self.uri, f"the microphone cannot record at {wanted} Hz (its rate is {native} Hz)"
                                  " and resample=false", f"pass rate={native} or allow resampling") from None
            return native

    def _open(self) -> None:
        try:
            import sounddevice as sd
        except OSError as e:
            raise SourceError(self.uri, f"PortAudio is not available: {e}", "apt install libportaudio2") from None
        try:
            info = sd.query_devices(self.device, kind="input")
        except Exception as e:  # noqa: BLE001 - ValueError / PortAudioError for missing devices
            raise SourceError(self.uri, f"no such microphone ({e})",
                              "list microphones with `ember devices`; use mic://default or mic://<index>") from None
        channels = min(self.opts["channels"] or 1, int(info["max_input_channels"])) or 1
        rate = self._pick_rate(sd, info, channels)
        self._shaper = Shaper(self.uri, rate, channels, self.opts)
        self._capacity = int(self.opts["buffer_s"] * rate)
        self._blocks.clear()
        self._frames = self._lost = self._gap = 0
        stream = None
        try:
            # int16 is what microphones deliver; ALSA's plug layer mangles some float conversions
            stream = sd.InputStream(device=self.device, channels=channels, samplerate=rate,
                                    dtype="int16", callback=self._callback)
            stream.start()
        except Exception as e:  # noqa: BLE001 - PortAudioError
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()
            raise SourceError(self.uri, f"cannot start recording: {e}", "check `ember devices`") from None
        self._stream = stream
        self._meta.update(self._shaper.meta, device_name=info["name"])

    def _callback(self, indata: np.ndarray, frames: int, _time: Any, status: Any) -> None:
        now = time.monotonic()
        with self._cond:
            if status and getattr(status, "input_overflow", False):
                self.stats.overflows += 1
            self._blocks.append((indata.copy(), now))
            self._frames += frames
            while self._frames > self._capacity and len(self._blocks) > 1:
                dropped, _ = self._blocks.popleft()
                self._frames -= len(dropped)
                self._lost += len(dropped)
                self.stats.overflows += 1
            self._cond.notify()

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()
        with self._cond:
            self._cond.notify_all()

    def _items(self) -> Iterator[Entry]:
        while not self._closed.is_set():
            with self._cond:
                while not self._blocks and not self._closed.is_set():
                    self._cond.wait(0.1)
                    if self._stream is not None and not self._stream.active and not self._blocks:
                        raise SourceError(self.uri, "the microphone stream stopped", "check the device")
                if not self._blocks:
                    return
                block, ts = self._blocks.popleft()
                self._frames -= len(block)
                lost, self._lost = self._lost, 0
            self._gap += lost
            for chunk, start in self._shaper.feed(block.astype(np.float32) / 32768.0):
                chunk, ts_, meta = self._shaper.entry(chunk, start, ts)
                yield chunk, ts_, {**meta, "gap": self._gap}  # type: ignore[dict-item]
                self._gap = 0


def open_mic(uri: str, **kwargs: Any) -> MicSource:
    """``open_source`` factory for ``mic://default``, ``mic://2`` or ``mic://<name substring>``."""
    parsed = parse_uri(uri)
    opts = options(parsed, kwargs, AUDIO_OPTIONS)
    target = parsed.target.strip("/")
    device: int | str | None = None if target in ("", "default") else int(target) if target.isdigit() else target
    if opts["rate"] is None:
        opts["rate"] = 16000
    return MicSource(uri, device, opts)


def open_audio_file(parsed: ParsedUri, kwargs: Mapping[str, Any]) -> AudioFileSource:
    """A sound file (called by the ``file://`` dispatcher)."""
    opts = options(parsed, kwargs, {k: v for k, v in AUDIO_OPTIONS.items() if k != "buffer_s"})
    return AudioFileSource(parsed.uri, require_path(parsed.uri, parsed.target), opts)
