"""``ember eval health``: the whole streaming pipeline over every annotated WFDB record in a folder.

QRS detection: Se/+P with the 150 ms window, ventricular flutter/fibrillation episodes (between
``[`` and ``]`` annotations) excluded as in ANSI/AAMI EC57. Classes: matched beats whose reference
is N, S, V or F (Q excluded, as is customary); a beat the app calls Q (unusable signal) counts
against its reference class.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from apps.health.classifier import BeatClassifier
from apps.health.metrics import class_metrics, qrs_metrics
from apps.health.monitor import HealthMonitor
from apps.health.records import CLASSES, Record, find_records, match, outside, read_record
from sdk.errors import EmberError

SCORED = CLASSES[:4]


def run_record(rec: Record, clf: BeatClassifier, block: int = 3600) -> tuple[np.ndarray, list[str], float]:
    """Detected R samples and classes of a record through ``HealthMonitor``; CPU seconds used."""
    mon = HealthMonitor(classifier=clf)
    events: list[dict[str, Any]] = []
    t0 = time.process_time()
    for s in range(0, len(rec.signal), block):
        events += mon.process(rec.signal[s:s + block])
    events += mon.finish()
    cpu = time.process_time() - t0
    beats = [e for e in events if e["type"] == "beat"]
    return np.array([b["sample"] for b in beats], np.int64), [b["class"] for b in beats], cpu


def score_record(rec: Record, det: np.ndarray, cls: list[str]) -> dict[str, Any]:
    keep_det = outside(det, rec.excluded)
    keep_ref = outside(rec.beats, rec.excluded)
    ref_i = np.flatnonzero(keep_ref)
    det_i = np.flatnonzero(keep_det)
    i_ref, i_det = match(rec.beats[ref_i], det[det_i])
    tp = len(i_ref)
    qrs = qrs_metrics(tp, len(ref_i) - tp, len(det_i) - tp)
    truth = [rec.labels[ref_i[i]] for i in i_ref]
    pred = [cls[det_i[j]] for j in i_det]
    pairs = [(CLASSES.index(t), CLASSES.index(p)) for t, p in zip(truth, pred) if t in SCORED]
    return {"qrs": qrs, "pairs": pairs}


def evaluate_folder(folder: str | Path, clf: BeatClassifier, lead: str = "MLII",
                    names: list[str] | None = None, progress: bool = True) -> dict[str, Any]:
    paths = find_records(folder)
    if names:
        paths = [p for p in paths if p.name in names]
        if not paths:
            raise EmberError(f"none of the records {names} is in {folder} with .atr annotations")
    from tqdm import tqdm

    per: dict[str, Any] = {}
    all_pairs: list[tuple[int, int]] = []
    tot = {"tp": 0, "fn": 0, "fp": 0}
    seconds = cpu = 0.0
    for path in tqdm(paths, desc="records", disable=not progress):
        rec = read_record(path, lead)
        det, cls, c = run_record(rec, clf)
        s = score_record(rec, det, cls)
        seconds += len(rec.signal) / 360
        cpu += c
        for k in tot:
            tot[k] += s["qrs"][k]
        all_pairs += s["pairs"]
        per[rec.name] = {"lead": rec.lead, "qrs": s["qrs"], **_classes(s["pairs"], brief=True)}
    return {"records": len(per), "model": clf.variant, "qrs": qrs_metrics(**tot), **_classes(all_pairs),
            "realtime_factor": round(seconds / max(cpu, 1e-9), 1), "per_record": per,
            "notes": "QRS: 150 ms window, VF episodes excluded; classes: AAMI N/S/V/F, reference Q beats excluded"}


def _classes(pairs: list[tuple[int, int]], brief: bool = False) -> dict[str, Any]:
    arr = np.asarray(pairs, np.int64).reshape(-1, 2)
    m = class_metrics(arr[:, 0], arr[:, 1], CLASSES)
    m.pop("Q")
    if brief:
        return {c: m[c] for c in SCORED}
    return m
