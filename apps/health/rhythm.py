"""``RhythmMonitor``: heart rate and rhythm alerts from a stream of classified beats.

Alerts have a start and an end (``Alert``): ``bradycardia`` (mean HR of the last 8 beats < 50),
``tachycardia`` (> 120), ``pause`` (an RR interval > 2 s, one event spanning it), ``v_couplet``
(two V beats in a row), ``v_run`` (three or more: VT when fast), ``bigeminy`` (N V alternating for
6 beats), ``trigeminy`` (N N V three times), ``irregular`` (AF-like: over the last 24 non-V RR
intervals the mean successive difference exceeds 12 % of the mean RR and the median 6 %). While the signal is unusable (``usable=False``) no alert starts and
open ones end with ``reason="signal"``: a lead-off is never an asystole or a pause.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from apps.health.frontend import RATE

BRADY, TACHY, PAUSE_S = 50.0, 120.0, 2.0


@dataclass
class Alert:
    kind: str
    start: int                 # sample
    end: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = {"alert": self.kind, "start_s": round(self.start / RATE, 3),
             "end_s": None if self.end is None else round(self.end / RATE, 3)}
        return {**d, **self.info}


class RhythmMonitor:
    """``update(r, cls, usable)`` per beat → list of (``"start"``/``"end"``, Alert)."""

    def __init__(self) -> None:
        self.beats: deque[tuple[int, str]] = deque(maxlen=32)
        self.active: dict[str, Alert] = {}
        self.hr: float | None = None
        self.lost: int | None = None     # sample where the signal last became unusable

    def heart_rate(self) -> float | None:
        r = [b[0] for b in self.beats][-9:]
        return 60.0 * RATE * (len(r) - 1) / (r[-1] - r[0]) if len(r) >= 3 else None

    def update(self, r: int, cls: str, usable: bool = True) -> list[tuple[str, Alert]]:
        if not usable:
            return self.signal_lost(r)
        if self.lost is not None and self.beats and self.beats[-1][0] < self.lost <= r:
            self.beats.clear()           # no pause, rate or pattern across a stretch of unusable signal
        prev = self.beats[-1][0] if self.beats else None
        self.beats.append((r, cls))
        self.hr = self.heart_rate()
        out: list[tuple[str, Alert]] = []
        if prev is not None and r - prev > PAUSE_S * RATE:
            a = Alert("pause", prev, r, {"rr_s": round((r - prev) / RATE, 3)})
            out += [("start", a), ("end", a)]
        conds = self._conditions()
        for kind, on in conds.items():
            if on and kind not in self.active:
                self.active[kind] = Alert(kind, r, info=self._info(kind))
                out.append(("start", self.active[kind]))
            elif not on and kind in self.active:
                a = self.active.pop(kind)
                a.end = r
                out.append(("end", a))
        return out

    def _info(self, kind: str) -> dict[str, Any]:
        return {"hr": round(self.hr, 1)} if self.hr is not None and kind in ("bradycardia", "tachycardia",
                                                                              "v_run") else {}

    def _conditions(self) -> dict[str, bool]:
        cls = "".join(c for _, c in self.beats)
        hr = self.hr
        return {
            "bradycardia": hr is not None and len(self.beats) >= 8 and hr < BRADY,
            "tachycardia": hr is not None and len(self.beats) >= 8 and hr > TACHY,
            "v_couplet": cls.endswith("VV") and not cls.endswith("VVV"),
            "v_run": cls.endswith("VVV"),
            "bigeminy": cls.endswith("NVNVNV"),
            "trigeminy": cls.endswith("NNVNNVNNV"),
            "irregular": self._irregular(),
        }

    def _irregular(self) -> bool:
        b = list(self.beats)
        rr = np.array([b[i][0] - b[i - 1][0] for i in range(1, len(b)) if b[i][1] != "V" and b[i - 1][1] != "V"])
        if len(rr) < 24:
            return False
        rr = rr[-24:]
        d = np.abs(np.diff(rr)) / rr.mean()
        return bool(d.mean() > 0.12 and np.median(d) > 0.06)

    def signal_lost(self, sample: int) -> list[tuple[str, Alert]]:
        """The signal became unusable at ``sample``: forget the beats (no pause across the gap), end alerts."""
        self.beats.clear()
        self.hr = None
        self.lost = sample
        return self._end_all(sample, "signal")

    def _end_all(self, r: int, reason: str) -> list[tuple[str, Alert]]:
        out = []
        for a in self.active.values():
            a.end, a.info = r, {**a.info, "reason": reason}
            out.append(("end", a))
        self.active = {}
        return out

    def finish(self, r: int) -> list[tuple[str, Alert]]:
        """End every open alert at sample ``r`` (end of the stream)."""
        return self._end_all(r, "end of stream")
