"""Beat windows and RR-interval features, in integers (the C front end computes the same).

For each detected beat ``r`` the classifier sees ``[3, LEN]``: channel 0 is the baseline-free
signal from ``r - PRE`` to ``r - PRE + 2*LEN`` averaged in pairs (180 Hz), in mV; channel 1 is the
patient's running average beat before this one (``TEMPLATE_SHIFT``: an exponential average of
the windows of beats that are not premature, Q4, 1/16 per beat: the patient's usual beat), so that a wide but usual beat (bundle branch block) can be told
from an unusual one; channel 2 holds the ``len(RR_NAMES)`` RR features, each repeated
``LEN / len(RR_NAMES)`` times. RR values are in
samples at 360 Hz; the local mean covers the last ``LOCAL`` intervals; the long-term mean is an
exponential average (Q4 fixed point, 1/64 per beat); ratios are Q8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apps.health.frontend import BL_DELAY, RATE, UNITS_PER_MV, Detection, QrsDetector

LEN = 128
PRE = 90                        # samples before the R peak (250 ms)
SPAN = 2 * LEN                  # raw samples per window
LOCAL = 10
RR_NAMES = ("prev", "next", "local", "long", "prev/local", "next/local", "prev/long", "next/prev")
REPEAT = LEN // len(RR_NAMES)
STEP = 512
LATE = 1024                     # a beat confirmed more than this after its window start is dropped
CHANNELS = 3
TEMPLATE_SHIFT = 4
TEMPLATE_MIN_RATIO = 230        # Q8: only beats with prev RR >= 0.9 x local mean update the template


@dataclass
class BeatInput:
    """A beat ready for the classifier: ``r`` (sample), ``window`` int [LEN], ``template`` int [LEN]
    (the running average beat, same units), ``rr`` int [8]."""

    r: int
    window: np.ndarray
    template: np.ndarray
    rr: np.ndarray

    def tensor(self) -> np.ndarray:
        """The model input [3, LEN] float32."""
        return model_input(self.window[None], self.template[None], self.rr[None])[0]


def model_input(windows: np.ndarray, templates: np.ndarray, rr: np.ndarray) -> np.ndarray:
    """[n, 3, LEN] float32 from int windows and templates [n, LEN] and int RR features [n, 8]."""
    scale = np.array([1 / RATE] * 4 + [1 / 256] * 4, np.float32)
    w = windows.astype(np.float32) / UNITS_PER_MV
    t = templates.astype(np.float32) / UNITS_PER_MV
    f = np.repeat(rr.astype(np.float32) * scale, REPEAT, axis=1)
    return np.stack([w, t, f], axis=1)


class RrTracker:
    """Integer RR statistics of consecutive beats."""

    def __init__(self) -> None:
        self.recent: list[int] = []
        self.long_q4 = -1

    def features(self, prev: int, nxt: int) -> np.ndarray:
        """Update with interval ``prev`` (this beat) and return the 8 features given ``nxt``."""
        self.recent = (self.recent + [prev])[-LOCAL:]
        local = sum(self.recent) // len(self.recent)
        if self.long_q4 < 0:
            self.long_q4 = prev << 4
        else:
            self.long_q4 += ((prev << 4) - self.long_q4) >> 6
        long = max(self.long_q4 >> 4, 1)
        local = max(local, 1)
        prev, nxt = max(prev, 1), max(nxt, 1)
        return np.array([prev, nxt, local, long, (prev << 8) // local, (nxt << 8) // local,
                         (prev << 8) // long, (nxt << 8) // prev], np.int64)


class BeatStream:
    """Samples in, ``BeatInput`` out: QRS detection, beat windows and RR features, streaming.

    A beat is emitted once the next beat is detected (its ``next`` RR is known); ``flush()`` emits
    the last one with ``next = prev``.
    """

    def __init__(self) -> None:
        self.detector = QrsDetector()
        self.rr = RrTracker()
        self._waiting: list[tuple[Detection, np.ndarray | None]] = []
        self._prev_r: int | None = None
        self._template_q4: np.ndarray | None = None

    def process(self, chunk: np.ndarray) -> list[BeatInput]:
        chunk = np.asarray(chunk).ravel()
        out: list[BeatInput] = []
        for s in range(0, len(chunk), STEP):   # small steps: windows are cut before the detector forgets
            out += self._step(chunk[s:s + STEP])
        return out

    def _step(self, chunk: np.ndarray) -> list[BeatInput]:
        self._waiting += [(d, None) for d in self.detector.process(chunk) if d.r - PRE + BL_DELAY >= d.at - LATE]
        self._take_windows()
        out = []
        while len(self._waiting) >= 2 and self._waiting[0][1] is not None:
            (d, w), nxt = self._waiting.pop(0), self._waiting[0][0]
            out.append(self._emit(d, w, nxt.r - d.r))
        return out

    def flush(self) -> list[BeatInput]:
        """The last beat (if its window is complete)."""
        out = []
        if self._waiting and self._waiting[0][1] is not None:
            d, w = self._waiting.pop(0)
            prev = d.r - self._prev_r if self._prev_r is not None else RATE
            out.append(self._emit(d, w, prev))
        self._waiting = []
        return out

    def _take_windows(self) -> None:
        n = self.detector.n
        for k, (d, w) in enumerate(self._waiting):
            start = d.r - PRE + BL_DELAY          # bl is stored BL_DELAY samples late
            if w is None and start + SPAN <= n:
                raw = self.detector.signal("bl", start, start + SPAN)
                self._waiting[k] = (d, (raw[0::2] + raw[1::2]) >> 1)

    def _emit(self, d: Detection, window: np.ndarray, nxt: int) -> BeatInput:
        prev = d.r - self._prev_r if self._prev_r is not None else nxt
        self._prev_r = d.r
        w = window.astype(np.int64)
        rr = self.rr.features(prev, nxt)
        if self._template_q4 is None:
            self._template_q4 = w << 4
        template = self._template_q4 >> 4
        if rr[4] >= TEMPLATE_MIN_RATIO:   # premature beats (most PVCs, APBs) stay out of the usual beat
            self._template_q4 = self._template_q4 + (((w << 4) - self._template_q4) >> TEMPLATE_SHIFT)
        return BeatInput(d.r, window, template, rr)


def beat_inputs(x_units: np.ndarray, chunk: int = 36000) -> list[BeatInput]:
    """All beats of a whole int signal."""
    bs = BeatStream()
    out: list[BeatInput] = []
    for s in range(0, len(x_units), chunk):
        out += bs.process(x_units[s:s + chunk])
    return out + bs.flush()
