"""Labelled beats for training: every record through the streaming front end (clean and with
MIT-BIH noise-stress noise added), detected beats matched to the annotations."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from apps.health.features import beat_inputs
from apps.health.frontend import to_units
from apps.health.records import CLASSES, Record, find_records, match, read_record

MODEL_CLASSES = CLASSES[:4]      # the model tells N, S, V, F apart; Q comes from signal quality
NOISES = ("bw", "ma")


def load_noise(folder: str | Path) -> np.ndarray:
    """The bw and ma noise records (both channels, concatenated) in mV at the model rate."""
    import wfdb

    parts = []
    for name in NOISES:
        path = Path(folder) / name
        if not path.with_suffix(".hea").is_file():
            raise FileNotFoundError(f"noise record {path}.hea not found (MIT-BIH Noise Stress Test Database)")
        sig = wfdb.rdrecord(str(path)).p_signal
        parts += [sig[:, 0], sig[:, 1]]
    return np.concatenate(parts).astype(np.float32)


def add_noise(sig: np.ndarray, noise: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``sig`` plus a random stretch of ``noise`` scaled to ``snr_db`` (powers of the zero-mean signals)."""
    start = int(rng.integers(0, len(noise) - len(sig)))
    n = noise[start:start + len(sig)] - noise[start:start + len(sig)].mean()
    s = sig - np.median(sig)
    gain = np.sqrt(np.mean(s ** 2) / max(np.mean(n ** 2), 1e-12)) / 10 ** (snr_db / 20)
    return (sig + gain * n).astype(np.float32)


def record_beats(rec: Record, signal: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Windows, RR features and labels of the detected beats that match an annotated N/S/V/F beat."""
    beats = beat_inputs(to_units(rec.signal if signal is None else signal))
    r = np.array([b.r for b in beats], np.int64)
    i_ref, i_det = match(rec.beats, r)
    labels = np.array([rec.labels[i] for i in i_ref])
    keep = np.isin(labels, MODEL_CLASSES)
    i_det, labels = i_det[keep], labels[keep]
    return {"window": np.stack([beats[i].window for i in i_det]).astype(np.int16),
            "template": np.stack([beats[i].template for i in i_det]).astype(np.int16),
            "rr": np.stack([beats[i].rr for i in i_det]).astype(np.int32),
            "y": np.array([MODEL_CLASSES.index(c) for c in labels], np.int64)}


def build(data: str | Path, noise: str | Path | None, cache: Path, snrs: tuple[float, ...] = (12.0, 6.0),
          seed: int = 0) -> dict[str, np.ndarray]:
    """All beats of every annotated record in ``data`` (clean + one noisy copy per SNR), cached."""
    if cache.is_file():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    from tqdm import tqdm

    rng = np.random.default_rng(seed)
    noise_sig = load_noise(noise) if noise else None
    parts: list[dict[str, np.ndarray]] = []
    for path in tqdm(find_records(data), desc="records → beats"):
        rec = read_record(path)
        variants = [(0, None)] + ([(k + 1, add_noise(rec.signal, noise_sig, s, rng))
                                   for k, s in enumerate(snrs)] if noise_sig is not None else [])
        for copy, sig in variants:
            b = record_beats(rec, sig)
            b["record"] = np.full(len(b["y"]), rec.name)
            b["copy"] = np.full(len(b["y"]), copy)
            parts.append(b)
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)
    return out
