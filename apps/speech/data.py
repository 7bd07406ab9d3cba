"""Clips on disk: reading any audio file as 16 kHz int16 mono, labelled folders, speaker-wise splits.

A data folder is laid out like Speech Commands: one sub-folder per label (``yes``, ``no``, ...,
``_unknown_``, ``_silence_``), WAV or FLAC at any rate. The speaker of ``<word_>SPEAKER_nohash_N.flac``
is ``SPEAKER``; files without ``_nohash_`` are their own speaker.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdk.errors import SourceError

RATE = 16000
CLIP = 16000  # samples in one model window (1 s)
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
LABELS = (*KEYWORDS, "unknown", "silence")
FOLDERS = {"_unknown_": "unknown", "_silence_": "silence", "unknown": "unknown", "silence": "silence"}
AUDIO_EXT = (".wav", ".flac", ".ogg", ".aiff", ".aif")
MIN_SAMPLES = 160  # 10 ms: anything shorter is not a clip


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str  # one of LABELS
    speaker: str
    word: str  # the spoken word (the label, or the unknown word's file-name prefix)


def read_audio(path: str | Path, rate: int = RATE) -> np.ndarray:
    """Any mono/stereo, 8/16/24/32-bit or float file -> int16 mono at ``rate`` (channels averaged)."""
    import soundfile as sf

    from sdk.features.kws import KwsFrontend
    from sdk.sources.resample import resample

    p = Path(path)
    if not p.is_file():
        raise SourceError(str(p), "audio file not found")
    try:
        audio, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, ValueError) as e:
        raise SourceError(str(p), f"not a readable audio file ({e})", "give a WAV or FLAC recording") from None
    if len(audio) < MIN_SAMPLES * sr // RATE or audio.shape[1] == 0:
        raise SourceError(str(p), f"only {len(audio)} samples", f"give at least {MIN_SAMPLES * 1000 // RATE} ms of audio")
    mono = audio.mean(axis=1)
    if sr != rate:
        mono = resample(mono, int(sr), rate)
    return KwsFrontend.from_float(np.nan_to_num(mono))


def fit(pcm: np.ndarray, n: int = CLIP) -> np.ndarray:
    """Centre-crop or zero-pad ``pcm`` to exactly ``n`` samples."""
    if len(pcm) >= n:
        start = (len(pcm) - n) // 2
        return pcm[start:start + n]
    out = np.zeros(n, pcm.dtype)
    start = (n - len(pcm)) // 2
    out[start:start + len(pcm)] = pcm
    return out


def speaker_of(path: Path) -> str:
    stem = path.stem
    if "_nohash_" not in stem:
        return stem
    return stem.split("_nohash_")[0].rsplit("_", 1)[-1]


def label_of(folder: str) -> str | None:
    name = folder.lower()
    return name if name in LABELS else FOLDERS.get(name)


def list_clips(root: str | Path) -> list[Clip]:
    """Every audio file in the label sub-folders of ``root`` (folders that are no label are skipped)."""
    base = Path(root)
    if not base.is_dir():
        raise SourceError(str(base), "data folder not found", "expected one sub-folder per label, e.g. yes/, no/")
    clips: list[Clip] = []
    for sub in sorted(p for p in base.iterdir() if p.is_dir()):
        label = label_of(sub.name)
        if label is None:
            continue
        for f in sorted(sub.iterdir()):
            if f.suffix.lower() in AUDIO_EXT:
                word = f.stem.split("_")[0] if label == "unknown" and "_nohash_" in f.stem else label
                clips.append(Clip(f, label, speaker_of(f), word))
    if not clips:
        raise SourceError(str(base), "no audio clips in label sub-folders",
                          f"expected {', '.join(LABELS)} (or _unknown_, _silence_) with WAV/FLAC files")
    return clips


def split_of(speaker: str, val: float = 0.2, select: float = 0.1) -> str:
    """'val', 'select' or 'train' by a stable hash of the speaker (never by position in a listing)."""
    u = (zlib.crc32(speaker.encode()) % 10000) / 10000
    return "val" if u < val else "select" if u < val + select else "train"
