"""Choose the streaming defaults (threshold, smoothing, energy gate) on the select split, never on val.

The rule: the fewest misses on the select keyword stream with at most ``max_fa`` false accepts per
hour on the select negative stream (its unknown words and silence, plus the held-out enrolment word
and the select part of the noise recordings); ties go to the higher threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np

from apps.speech.data import Clip
from apps.speech.evaluate import decide, score_keywords, score_negatives, streams_from, window_posteriors

THRESHOLDS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97)
SMOOTHS = (1, 2, 3, 4)
GATES = (0.0, 40.0, 50.0, 60.0, 70.0, 80.0)


def tune(spotter: Any, clips: Sequence[Clip], noise: Sequence[np.ndarray], hours: float = 2.0, seed: int = 1,
         max_fa: float = 0.5) -> dict[str, Any]:
    """Grid-search the settings on streams built from ``clips``; sets ``spotter.settings`` and returns the table."""
    kw, neg = streams_from(clips, spotter.keywords, hours, seed, noise)
    kpost, npost = window_posteriors(spotter, kw.audio), window_posteriors(spotter, neg.audio)
    rows = []
    for gate in GATES:
        for smooth in SMOOTHS:
            for thr in THRESHOLDS:
                s = replace(spotter.settings, threshold=thr, smooth=smooth, gate=gate)
                k = score_keywords(kw, decide(*kpost, spotter.labels, spotter.keywords, s))
                n = score_negatives(neg, decide(*npost, spotter.labels, spotter.keywords, s))
                gated = float(np.mean(npost[2] < gate)) if gate else 0.0
                rows.append({"threshold": thr, "smooth": smooth, "gate": gate, "miss_rate": k["miss_rate"],
                             "wrong": k["wrong_detections"], "fa_per_hour": n["false_accepts_per_hour"],
                             "gated_fraction": gated})
    ok = [r for r in rows if r["fa_per_hour"] <= max_fa] or rows
    best = min(ok, key=lambda r: (r["miss_rate"] + r["wrong"] / max(1, len(kw.events)), -r["gate"],
                                  -r["threshold"], r["smooth"]))
    spotter.settings = replace(spotter.settings, threshold=best["threshold"], smooth=best["smooth"],
                               gate=best["gate"])
    return {"chosen": asdict(spotter.settings), "chosen_row": best, "keyword_events": len(kw.events),
            "negative_hours": neg.hours, "max_fa_per_hour": max_fa, "grid": rows}
