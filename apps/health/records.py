"""WFDB records with beat annotations: reading, AAMI classes, resampling, beat matching."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apps.health.frontend import RATE
from sdk.errors import EmberError

CLASSES = ("N", "S", "V", "F", "Q")
# AAMI EC57 mapping of the MIT-BIH beat symbols
AAMI = {**dict.fromkeys("NLRej", "N"), **dict.fromkeys("AaJS", "S"), **dict.fromkeys("VE", "V"),
        "F": "F", **dict.fromkeys("/fQ", "Q")}
TOLERANCE = round(0.150 * RATE)   # beat matching window (150 ms)


@dataclass
class Record:
    """One lead at RATE Hz in mV, with its beats (samples at RATE, AAMI classes)."""

    name: str
    signal: np.ndarray          # float32 mV
    beats: np.ndarray           # int64 sample indices (beat annotations only)
    labels: list[str]           # AAMI class of each beat
    excluded: list[tuple[int, int]]   # ventricular flutter/fibrillation episodes [start, end)
    lead: str


def pick_lead(names: list[str], lead: str = "MLII") -> int:
    """Index of ``lead`` among ``names``, else the first channel."""
    return names.index(lead) if lead in names else 0


def resample(x: np.ndarray, rate: float) -> np.ndarray:
    """``x`` at ``rate`` Hz → RATE Hz (polyphase, anti-aliased); unchanged at RATE."""
    if round(rate) == RATE:
        return np.asarray(x, np.float32)
    if not 50 <= rate <= 5000:
        raise EmberError(f"sampling rate {rate} Hz is not an ECG rate: give 125 to 1000 Hz")
    from sdk.sources.resample import Resampler

    r = Resampler(round(rate), RATE)
    x2 = np.asarray(x, np.float32).reshape(-1, 1)
    return np.concatenate([r.process(x2), r.flush()])[:, 0].astype(np.float32)


def read_record(path: str | Path, lead: str = "MLII", extension: str = "atr") -> Record:
    """A WFDB record (path without extension) with its annotations; a clear error when unusable."""
    import wfdb

    path = str(path)
    try:
        header = wfdb.rdheader(path)
        ch = pick_lead(list(header.sig_name), lead)
        rec = wfdb.rdrecord(path, channels=[ch], physical=True)
    except (OSError, ValueError, IndexError, TypeError) as e:
        raise EmberError(f"cannot read WFDB record {path}: {e} (give NAME for NAME.hea + NAME.dat)") from None
    try:
        ann = wfdb.rdann(path, extension)
    except (OSError, ValueError) as e:
        raise EmberError(f"record {path} has no readable .{extension} annotations ({e}); "
                         "evaluation needs beat annotations next to the record") from None
    rate = float(rec.fs)
    scale = RATE / rate
    sig = resample(np.nan_to_num(rec.p_signal[:, 0]), rate)
    beats, labels, excluded, start = [], [], [], None
    for s, sym in zip(ann.sample, ann.symbol):
        at = round(int(s) * scale)
        if sym in AAMI:
            beats.append(at)
            labels.append(AAMI[sym])
        elif sym == "[":
            start = at
        elif sym == "]" and start is not None:
            excluded.append((start, at + 1))
            start = None
    if start is not None:
        excluded.append((start, len(sig)))
    return Record(Path(path).name, sig, np.asarray(beats, np.int64), labels, excluded, header.sig_name[ch])


def find_records(folder: str | Path) -> list[Path]:
    """Every WFDB record in ``folder`` (recursively) that has ``.atr`` beat annotations."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EmberError(f"{folder} is not a folder of WFDB records (NAME.hea, NAME.dat, NAME.atr)")
    found = sorted(h.with_suffix("") for h in folder.rglob("*.hea") if h.with_suffix(".atr").is_file())
    if not found:
        raise EmberError(f"{folder} has no WFDB record with beat annotations (NAME.hea + NAME.atr)")
    return found


def match(ref: np.ndarray, det: np.ndarray, tol: int = TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i_ref, i_det) matched one to one within ``tol`` samples (nearest first, both sorted)."""
    ref, det = np.asarray(ref), np.asarray(det)
    pairs: list[tuple[int, int]] = []
    j = 0
    for i, s in enumerate(ref):
        while j < len(det) and det[j] < s - tol:
            j += 1
        if j < len(det) and abs(det[j] - s) <= tol:
            if j + 1 < len(det) and abs(det[j + 1] - s) < abs(det[j] - s) and (
                    i + 1 >= len(ref) or abs(det[j + 1] - s) <= abs(det[j + 1] - ref[i + 1])):
                j += 1
            pairs.append((i, j))
            j += 1
    arr = np.asarray(pairs, np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def outside(samples: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """Mask of samples outside every [start, end) span."""
    keep = np.ones(len(samples), bool)
    for a, b in spans:
        keep &= ~((samples >= a) & (samples < b))
    return keep
