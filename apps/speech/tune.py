"""Choose the streaming defaults (threshold, smoothing, energy gate) on the select split, never on val.

The rule: among the settings that miss at most ``max_miss`` of the select keyword stream (a detector
that misses more is no use), the fewest misses with at most ``max_fa`` false accepts per hour on the
select negative stream (its unknown words and silence, plus the held-out enrolment word and the select
part of the noise recordings); when none reaches ``max_fa``, the fewest false accepts. Ties go to the
higher gate and threshold.
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
         max_fa: float = 0.5, max_miss: float = 0.2) -> dict[str, Any]:
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
    misses = lambda r: r["miss_rate"] + r["wrong"] / max(1, len(kw.events))
    usable = [r for r in rows if misses(r) <= max_miss] or [min(rows, key=misses)]
    ok = [r for r in usable if r["fa_per_hour"] <= max_fa]
    best = min(ok, key=lambda r: (misses(r), -r["gate"], -r["threshold"], r["smooth"])) if ok else \
        min(usable, key=lambda r: (r["fa_per_hour"], misses(r), -r["gate"]))
    spotter.settings = replace(spotter.settings, threshold=best["threshold"], smooth=best["smooth"],
                               gate=best["gate"])
    return {"chosen": asdict(spotter.settings), "chosen_row": best, "keyword_events": len(kw.events),
            "negative_hours": neg.hours, "max_fa_per_hour": max_fa, "max_miss_rate": max_miss, "grid": rows}
