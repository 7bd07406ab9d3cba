"""``HealthMonitor``: the whole streaming pipeline, mV samples at any rate in, events out.

    mon = HealthMonitor(rate=250)                 # resampled to 360 Hz inside
    for event in mon.process(block_mv): ...       # {"type": "beat" | "alert" | "quality", ...}
    events = mon.finish()

Beat events carry the R-peak sample (at 360 Hz) and time, the class (N S V F, or Q while the
signal is unusable), its probability and the heart rate.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from apps.health.classifier import BeatClassifier
from apps.health.features import BeatStream
from apps.health.frontend import RATE, to_units
from apps.health.quality import QualityMonitor
from apps.health.rhythm import RhythmMonitor
from sdk.errors import EmberError

MIN_RATE, MAX_RATE = 125, 1000


class HealthMonitor:
    def __init__(self, rate: float = RATE, classifier: BeatClassifier | None = None, keep_s: float = 0.0) -> None:
        if not MIN_RATE <= rate <= MAX_RATE:
            raise EmberError(f"sampling rate {rate:g} Hz is outside {MIN_RATE}-{MAX_RATE} Hz: "
                             "give the source's real rate (e.g. csv://file.csv?rate=250)")
        self.rate = float(rate)
        self.resampler = None
        if round(rate) != RATE:
            from sdk.sources.resample import Resampler

            self.resampler = Resampler(round(rate), RATE)
        self.classifier = classifier or BeatClassifier()
        self.beats = BeatStream()
        self.quality = QualityMonitor()
        self.rhythm = RhythmMonitor()
        self.n = 0
        self.recent: deque[float] = deque(maxlen=int(keep_s * RATE))   # the last keep_s seconds (mV, 360 Hz)
        self.counts = {c: 0 for c in "NSVFQ"}

    def process(self, x_mv: np.ndarray, lead_off: bool = False) -> list[dict[str, Any]]:
        """Feed one block (mV, 1-D or [n, 1]); returns the events it completed."""
        x = np.asarray(x_mv, np.float32).reshape(-1)
        if self.resampler is not None:
            x = self.resampler.process(x[:, None])[:, 0]
        return self._run(x, lead_off)

    def finish(self) -> list[dict[str, Any]]:
        """Flush the resampler and the last beat; end open alerts."""
        events = []
        if self.resampler is not None:
            events += self._run(self.resampler.flush()[:, 0], False)
        events += self._beats(self.beats.flush())
        events += [self._alert(kind, a) for kind, a in self.rhythm.finish(self.n)]
        return events

    def _run(self, x: np.ndarray, lead_off: bool) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for q in self.quality.process(x, lead_off):
            if not events or events[-1].get("state") != q.state:
                events.append({"type": "quality", "t": round(q.start / RATE, 3), "state": q.state,
                               "usable": q.usable, "noise_mv": q.noise_mv, "wander_mv": q.wander_mv})
            if not q.usable:
                events += [self._alert(kind, a) for kind, a in self.rhythm.signal_lost(q.start)]
        self.n += len(x)
        if self.recent.maxlen:
            self.recent.extend(x.tolist())
        x = np.where(np.isnan(x), 0.0, x)
        return self._dedupe_quality(events) + self._beats(self.beats.process(to_units(x)))

    def _dedupe_quality(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for e in events:
            if e["type"] != "quality":
                out.append(e)
            elif e["state"] != getattr(self, "_last_state", None):
                out.append(e)
                self._last_state = e["state"]
        return out

    def _beats(self, beats: list[Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        usable = self.quality.usable_at(self.n)
        labels = self.classifier.classify(beats) if usable else [("Q", 1.0)] * len(beats)
        for b, (cls, p) in zip(beats, labels):
            self.counts[cls] += 1
            changes = self.rhythm.update(b.r, cls, usable)
            hr = self.rhythm.hr
            events.append({"type": "beat", "sample": b.r, "t": round(b.r / RATE, 3), "class": cls,
                           "p": round(p, 3), "hr": None if hr is None else round(hr, 1)})
            events += [self._alert(kind, a) for kind, a in changes]
        return events

    @staticmethod
    def _alert(kind: str, alert: Any) -> dict[str, Any]:
        return {"type": "alert", "event": kind, **alert.as_dict()}

    def close(self) -> None:
        self.classifier.close()
