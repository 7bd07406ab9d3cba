"""The reference profile: what the model's inputs and outputs looked like on its reference data.

Stored in the manifest under ``reference_profile`` (or in its own JSON file)::

    {"format": "ember-reference-profile", "version": 1, "kind": "image", "items": 500,
     "bins": 10,
     "features": {"brightness": {"lo": 31.5, "hi": 201.2, "counts": [3, 17, ...]}, ...},
     "classes": {"labels": ["person", "car"], "counts": [310, 190]},      # or null
     "embedding_mean": [0.1, ...],                                      # or null
     "thresholds": {"psi_warn": 0.1, "psi_alert": 0.25}}                 # optional

Every continuous feature has ``bins`` uniform bins on ``[lo, hi]``; values outside fall in the end
bins. ``lo``/``hi`` are the 0.5 % / 99.5 % quantiles of the reference values widened by 5 %, so the
bins cover the reference data and the live windows (binned the same way) compare bin by bin.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import TelemetryError
from sdk.telemetry.features import DEFAULT_RANGES, FeatureExtractor, feature_names, parse_output
from sdk.telemetry.stats import Binning, WindowStats
from sdk.util.files import write_text_atomic

FORMAT = "ember-reference-profile"


@dataclass
class ReferenceProfile:
    """Reference histograms for one app kind; see the module docstring for the JSON format."""

    kind: str
    bins: int
    features: dict[str, dict[str, Any]]
    classes: dict[str, Any] | None = None
    embedding_mean: list[float] | None = None
    items: int = 0
    thresholds: dict[str, float] = field(default_factory=dict)

    def binning(self) -> Binning:
        """The binning live windows must use to compare with this profile."""
        names = feature_names(self.kind)
        lo = [self.features[n]["lo"] if n in self.features else DEFAULT_RANGES[n][0] for n in names]
        hi = [self.features[n]["hi"] if n in self.features else DEFAULT_RANGES[n][1] for n in names]
        return Binning(names, lo, hi, self.bins)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": 1, "kind": self.kind, "items": self.items, "bins": self.bins,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "features": self.features, "classes": self.classes,
                "embedding_mean": self.embedding_mean, "thresholds": self.thresholds}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "reference profile") -> ReferenceProfile:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise TelemetryError(f"{where}: not an Ember reference profile (expected \"format\": \"{FORMAT}\"); "
                                 "make one with 'ember profile-data'")
        try:
            prof = cls(kind=d["kind"], bins=int(d["bins"]), features=dict(d["features"]), classes=d.get("classes"),
                       embedding_mean=d.get("embedding_mean"), items=int(d.get("items", 0)),
                       thresholds=dict(d.get("thresholds") or {}))
            feature_names(prof.kind)
            for name, f in prof.features.items():
                if len(f["counts"]) != prof.bins or not f["hi"] > f["lo"]:
                    raise ValueError(f"feature {name}: {len(f['counts'])} counts for {prof.bins} bins")
        except (KeyError, TypeError, ValueError) as e:
            raise TelemetryError(f"{where}: malformed reference profile ({e}); rebuild it with 'ember profile-data'") from None
        return prof

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the profile JSON to ``path`` atomically; a write failure is a ``TelemetryError``."""
        try:
            return write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")
        except OSError as e:
            raise TelemetryError(f"{path}: cannot write the reference profile ({e.strerror or e})") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReferenceProfile:
        """From a profile JSON file, a ``manifest.json`` or a model folder holding one."""
        p = Path(path)
        if p.is_dir():
            p = p / "manifest.json"
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise TelemetryError(f"{p}: cannot read the reference profile ({e})") from None
        if isinstance(data, dict) and "reference_profile" in data:
            if not data["reference_profile"]:
                raise TelemetryError(f"{p}: the manifest has an empty reference_profile; "
                                     "embed one with 'ember profile-data --manifest'")
            data = data["reference_profile"]
        return cls.from_dict(data, str(p))


def embed_in_manifest(profile: ReferenceProfile, manifest: str | os.PathLike[str]) -> Path:
    """Write ``profile`` into ``manifest.json`` (a file or its folder) under ``reference_profile``,
    through ``sdk.models.manifest`` (validated, saved atomically)."""
    from sdk.errors import ModelError
    from sdk.models.manifest import Manifest

    p = Path(manifest)
    folder = p if p.is_dir() else p.parent
    try:
        m = Manifest.load(folder)
    except ModelError as e:
        raise TelemetryError(f"cannot embed the reference profile: {e}") from None
    m.reference_profile = profile.to_dict()
    return m.save(folder)


def build_reference_profile(
    items: Iterable[Any],
    kind: str,
    outputs: Iterable[Any] | Callable[[Any], Any] | None = None,
    labels: Sequence[str] | None = None,
    bins: int = 10,
    sample_rate: int | None = None,
    progress: bool = False,
) -> ReferenceProfile:
    """Profile the inputs ``items`` (arrays, or ``Item``s with ``.data``/``.meta``) of app ``kind``.

    ``outputs`` is either the model outputs for the same items, in order, or a function
    ``item_data -> output`` (e.g. a pipeline's infer+postprocess); outputs give the confidence,
    class-frequency and embedding references. ``labels`` names the classes.
    """
    from tqdm import tqdm  # only needed here (tqdm is an optional dependency of the core)

    extractor = FeatureExtractor(kind, sample_rate)
    names = feature_names(kind)
    n_in = len(extractor.names)
    rows: list[np.ndarray] = []
    confs: list[np.ndarray] = []
    class_list: list[np.ndarray] = []
    emb_sum: np.ndarray | None = None
    emb_n = 0
    norms: list[float] = []
    out_iter = iter(outputs) if outputs is not None and not callable(outputs) else None
    for item in tqdm(items, desc=f"profiling {kind}", unit="item", disable=not progress):
        data, meta = (item, None) if isinstance(item, np.ndarray) or not hasattr(item, "data") else (item.data, getattr(item, "meta", None))
        rows.append(extractor(data, meta).copy())
        if outputs is None:
            continue
        out = outputs(data) if callable(outputs) else next(out_iter, None)  # type: ignore[arg-type]
        cls_, conf, emb = parse_output(out)
        confs.append(conf)
        class_list.append(cls_)
        if emb is not None:
            emb_sum = emb.astype(np.float64) if emb_sum is None else emb_sum + emb
            emb_n += 1
            norms.append(float(np.linalg.norm(emb)))
    if not rows:
        raise TelemetryError(f"no {kind} items to profile: the source or folder gave nothing")
    values = np.vstack(rows)
    features: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(names[:n_in]):
        features[name] = _continuous(values[:, i], bins, name)
    if confs and np.concatenate(confs).size:
        features["confidence"] = _continuous(np.concatenate(confs), bins, "confidence", fixed=(0.0, 1.0))
    if emb_n:
        features["embedding_norm"] = _continuous(np.asarray(norms), bins, "embedding_norm")
    classes = None
    if class_list and np.concatenate(class_list).size:
        all_cls = np.concatenate(class_list)
        n_cls = max(int(all_cls.max()) + 1, len(labels or ()))
        classes = {"labels": list(labels) if labels else [str(i) for i in range(n_cls)],
                   "counts": np.bincount(all_cls, minlength=n_cls).tolist()}
    return ReferenceProfile(kind=kind, bins=bins, features=features, classes=classes,
                            embedding_mean=None if not emb_n else (emb_sum / emb_n).round(6).tolist(),
                            items=len(rows))


def _continuous(v: np.ndarray, bins: int, name: str, fixed: tuple[float, float] | None = None) -> dict[str, Any]:
    v = v[~np.isnan(v)]
    if fixed is not None:
        lo, hi = fixed
    elif v.size:
        q_lo, q_hi = np.quantile(v, [0.005, 0.995])
        pad = 0.05 * (q_hi - q_lo) if q_hi > q_lo else max(abs(q_lo) * 0.05, 1e-3)
        lo, hi = float(q_lo - pad), float(q_hi + pad)
    else:
        lo, hi = DEFAULT_RANGES[name]
    binning = Binning([name], [lo], [hi], bins)
    w = WindowStats(binning)
    w.add_many(0, v)
    return {"lo": round(lo, 6), "hi": round(hi, 6), "counts": w.counts[0].tolist(), "n": int(v.size)}
