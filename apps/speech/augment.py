"""Training data: clips -> augmented copies -> integer front-end features, cached once as .npy.

Augmentation on the waveform (before the integer front end, so the network sees exactly what the
device computes): time shift (±100 ms), speed/pitch (resampling by 0.88..1.12), gain (-10..+6 dB) and
background noise at a random SNR (0..20 dB) from the training part of the noise recordings.
SpecAugment (time/frequency masks) is applied on the features while training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apps.speech.data import CLIP, LABELS, Clip, fit, read_audio

NOISE_PARTS = {"train": (0.0, 0.7), "select": (0.7, 0.85), "val": (0.85, 1.0)}


@dataclass
class Noise:
    """Background-noise recordings, each cut into train/select/val parts (no sample in two parts)."""

    parts: dict[str, list[np.ndarray]]

    @classmethod
    def load(cls, folder: Path) -> Noise:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".wav", ".flac"))
        rec = [read_audio(f).astype(np.float32) for f in files]
        parts = {k: [r[int(a * len(r)):int(b * len(r))] for r in rec] for k, (a, b) in NOISE_PARTS.items()}
        return cls(parts)

    def segment(self, part: str, n: int, rng: np.random.Generator) -> np.ndarray:
        rec = self.parts[part][rng.integers(len(self.parts[part]))]
        start = rng.integers(0, len(rec) - n)
        return rec[start:start + n]


def _speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (pitch shifts with it), linear interpolation."""
    n = max(2, int(len(x) / factor))
    return np.interp(np.arange(n) * factor, np.arange(len(x)), x).astype(np.float32)


def _shift(x: np.ndarray, samples: int) -> np.ndarray:
    out = np.zeros_like(x)
    if samples >= 0:
        out[samples:] = x[:len(x) - samples]
    else:
        out[:samples] = x[-samples:]
    return out


def augment(pcm: np.ndarray, noise: Noise | None, rng: np.random.Generator, label: str) -> np.ndarray:
    """One random augmented copy (int16, 1 s) of a 1 s int16 clip."""
    x = pcm.astype(np.float32)
    if label != "silence":
        x = fit(_speed(x, rng.uniform(0.88, 1.12)), CLIP)
        x = _shift(x, int(rng.integers(-1600, 1601)))
    x *= 10 ** (rng.uniform(-10, 6) / 20)
    if noise is not None and rng.random() < 0.85:
        n = noise.segment("train", CLIP, rng)
        sig = float(np.sqrt(np.mean(x ** 2))) + 1.0
        nrms = float(np.sqrt(np.mean(n ** 2))) + 1e-3
        snr = rng.uniform(0, 20) if label != "silence" else rng.uniform(-10, 10)
        x = x + n * (sig / nrms) * 10 ** (-snr / 20)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def silence_clip(noise: Noise, part: str, rng: np.random.Generator) -> np.ndarray:
    """A 1 s 'silence' clip: a noise segment at a random level from near-digital silence to loud."""
    level = 10 ** rng.uniform(-4, -0.5) * 32768
    n = noise.segment(part, CLIP, rng)
    n = n / (np.sqrt(np.mean(n ** 2)) + 1e-3) * level
    return np.clip(np.round(n), -32768, 32767).astype(np.int16)


def features_of(clips: Sequence[Clip], copies: int, noise: Noise | None, seed: int,
                extra_silence: int = 0, desc: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """uint8 [n, copies, 49, 40] features (copy 0 clean, the rest augmented) and int64 labels [n]."""
    from tqdm import tqdm

    from sdk.features.kws import KwsFrontend

    fe = KwsFrontend()
    rng = np.random.default_rng(seed)
    frames = fe.frames_for(CLIP)
    n = len(clips) + extra_silence
    x = np.zeros((n, copies, frames, fe.channels), np.uint8)
    y = np.zeros(n, np.int64)
    for i in tqdm(range(n), desc=desc, unit="clip", mininterval=5):
        if i < len(clips):
            label, pcm = clips[i].label, fit(read_audio(clips[i].path))
        else:
            label, pcm = "silence", silence_clip(noise, "train", rng)  # type: ignore[arg-type]
        y[i] = LABELS.index(label)
        x[i, 0] = fe(pcm)
        for c in range(1, copies):
            x[i, c] = fe(augment(pcm, noise, rng, label))
    return x, y
