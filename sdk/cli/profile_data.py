"""``ember profile-data``: build a reference profile (input feature histograms) for drift detection."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import TelemetryError
from sdk.telemetry.profile import build_reference_profile, embed_in_manifest

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp"}
AUDIO_EXT = {".wav", ".flac", ".ogg"}


def register(sub: Any) -> None:
    p = sub.add_parser("profile-data", help="build a reference profile for drift detection",
                       description="Compute the reference histograms of input features (image brightness/"
                       "contrast/sharpness; audio RMS, spectral centroid, zero-crossing rate; ECG heart rate "
                       "and signal quality) from a source or a folder, write them as JSON and optionally embed "
                       "them in a model manifest under reference_profile.")
    p.add_argument("--kind", required=True, choices=("image", "audio", "ecg"), help="type of data")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--source", metavar="URI", help="source URI (file://clip.mp4, mic://..., ...)")
    src.add_argument("--data", metavar="DIR", help="folder of images, audio clips or WFDB ECG records (recursive)")
    p.add_argument("--out", required=True, metavar="FILE", help="profile JSON to write")
    p.add_argument("--manifest", metavar="FILE", help="also embed the profile in this manifest.json")
    p.add_argument("--limit", type=int, default=2000, help="at most this many items (default %(default)s)")
    p.add_argument("--bins", type=int, default=10, help="histogram bins per feature (default %(default)s)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace, config: Any) -> int:
    items = _from_source(args.source, args.limit) if args.source else _from_dir(Path(args.data), args.kind, args.limit)
    profile = build_reference_profile(items, args.kind, bins=args.bins, progress=True)
    profile.save(args.out)
    print(f"wrote {args.out}: {profile.items} items, features {', '.join(profile.features)}")
    if args.manifest:
        print(f"embedded in {embed_in_manifest(profile, args.manifest)}")
    return 0


def _from_source(uri: str, limit: int) -> Iterator[Any]:
    from sdk.sources.registry import open_source

    with open_source(uri) as src:
        for i, item in enumerate(src):
            if i >= limit:
                break
            yield item


def _from_dir(folder: Path, kind: str, limit: int) -> Iterator[Any]:
    if not folder.is_dir():
        raise TelemetryError(f"--data {folder}: not a folder")
    n = 0
    for item in {"image": _images, "audio": _audio, "ecg": _ecg}[kind](folder):
        if n >= limit:
            return
        n += 1
        yield item
    if n == 0:
        raise TelemetryError(f"--data {folder}: no {kind} files found (images: {sorted(IMAGE_EXT)}; "
                             f"audio: {sorted(AUDIO_EXT)}; ECG: WFDB .hea/.dat records)")


def _images(folder: Path) -> Iterator[np.ndarray]:
    import cv2

    for f in sorted(folder.rglob("*")):
        if f.suffix.lower() in IMAGE_EXT:
            img = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if img is not None:
                yield img


class _Chunk:
    """An array with metadata (what ``build_reference_profile`` reads from source items)."""

    def __init__(self, data: np.ndarray, rate: int) -> None:
        self.data = data
        self.meta = {"sample_rate": rate}


def _audio(folder: Path) -> Iterator[_Chunk]:
    import soundfile as sf

    for f in sorted(folder.rglob("*")):
        if f.suffix.lower() in AUDIO_EXT:
            data, rate = sf.read(str(f), dtype="float32", always_2d=True)
            yield _Chunk(data, rate)


def _ecg(folder: Path, seconds: float = 10.0) -> Iterator[_Chunk]:
    import wfdb

    for hea in sorted(folder.rglob("*.hea")):
        rec = wfdb.rdrecord(str(hea.with_suffix("")))
        sig = np.nan_to_num(rec.p_signal.astype(np.float32))
        step = int(seconds * rec.fs)
        for start in range(0, sig.shape[0] - step + 1, step):
            yield _Chunk(sig[start:start + step], int(rec.fs))
