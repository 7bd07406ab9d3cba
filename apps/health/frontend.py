"""Streaming QRS detection in integer arithmetic (Pan-Tompkins / Hamilton-Tompkins style).

Input: integer samples at ``RATE`` Hz in MIT-BIH units (200 per mV, ``to_units``). Every stage is
an integer FIR filter or a decision on integers, so the C port (``firmware_export/frontend/
ember_ecg_frontend.c``) gives the same beats sample for sample. Stages (n = sample index):

    s1 = sum8(x); s2 = sum8(s1)                         low-pass, gain 64, delay 7
    hp[n] = s2[n-32] - (sum64(s2)[n] >> 6)              high-pass, delay 39
    d = 2hp[n] + hp[n-1] - hp[n-3] - 2hp[n-4]            derivative
    e = clamp(d >> 5, ±32767); sq = e*e >> 6; mwi = sum54(sq)
    bl[n] = x[n-128] - (sum256(x)[n] >> 8)              baseline-free signal for beat windows

A candidate is a sample of ``mwi`` greater than the ``W`` samples before it and not smaller than
the ``W`` after it (known ``W`` samples later: bounded delay). Candidates above an adaptive
threshold between the running means of QRS and noise peaks are beats; a T-wave check and a
search-back (at 1.5 × the mean RR, with half the threshold) follow Hamilton & Tompkins (1986).
Before any sample, the stream is taken to have held its first value forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

RATE = 360                 # model rate (Hz)
UNITS_PER_MV = 200
W = 72                     # candidate half-window (200 ms), also the refractory period
LEARN = 2 * RATE           # candidates in the first 2 s set the initial thresholds
HP_DELAY = 39
BL_DELAY = 128
T_WAVE = 130               # 360 ms: a weak-sloped candidate this close to a beat is a T wave
SEARCH = 60                # samples of hp/e before the mwi peak searched for the R peak and the slope
NBUF = 8
TH16 = 3                   # threshold = noise + TH16/16 × (qrs - noise)
MAX_PENDING = 16
HISTORY = 1024             # raw samples kept between chunks (>= every filter span)
KEEP = 2048                # filtered samples kept for candidates, R search and beat windows


def to_units(mv: np.ndarray) -> np.ndarray:
    """Millivolts → int32 MIT-BIH units (200/mV), clipped to the 16-bit range."""
    return np.clip(np.round(np.asarray(mv, np.float64) * UNITS_PER_MV), -32768, 32767).astype(np.int32)


def _movsum(x: np.ndarray, n: int) -> np.ndarray:
    """sum_{k<n} x[i-k] for i >= n-1 (length len(x) - n + 1), int64."""
    c = np.concatenate([[0], np.cumsum(x, dtype=np.int64)])
    return c[n:] - c[:-n]


def filter_stages(x: np.ndarray) -> dict[str, np.ndarray]:
    """hp, e, mwi, bl for the last ``len(x) - 512`` samples of int array ``x`` (512 samples of history)."""
    x = x.astype(np.int64)
    s1 = _movsum(x, 8)                       # aligned to x[7:]
    s2 = _movsum(s1, 8)                      # x[14:]
    hp = s2[63 - 32:len(s2) - 32] - (_movsum(s2, 64) >> 6)   # x[77:]
    d = 2 * hp[4:] + hp[3:-1] - hp[1:-3] - 2 * hp[:-4]       # x[81:]
    e = np.clip(d >> 5, -32767, 32767)
    mwi = _movsum((e * e) >> 6, 54)                           # x[134:]
    bl = x[255 - 128:len(x) - 128] - (_movsum(x, 256) >> 8)  # x[255:]
    out = len(x) - 512
    return {"hp": hp[-out:], "e": e[-out:], "mwi": mwi[-out:], "bl": bl[-out:]}


@dataclass
class Detection:
    """A detected beat: ``r`` = R-peak sample index (stream samples at RATE), ``peak`` = mwi peak."""

    r: int
    peak: int
    index: int      # mwi candidate index
    at: int = 0     # stream sample at which the beat was confirmed


@dataclass
class _State:
    qrs: list[int] = field(default_factory=lambda: [0] * NBUF)
    noise: list[int] = field(default_factory=lambda: [0] * NBUF)
    rr: list[int] = field(default_factory=lambda: [RATE] * NBUF)
    last: int = -1          # mwi index of the last beat
    last_slope: int = 0
    started: bool = False
    pending: list[tuple[int, int, int, int]] = field(default_factory=list)   # noise peaks (i, peak, slope, r)

    def threshold(self) -> int:
        q, n = sum(self.qrs) >> 3, sum(self.noise) >> 3
        return n + ((q - n) >> 4) * TH16


class QrsDetector:
    """Feed int samples with ``process(chunk)``; it returns the beats confirmed by that chunk.

    The result does not depend on how the stream is cut into chunks.
    """

    def __init__(self) -> None:
        self.n = 0                       # samples consumed
        self._raw = np.zeros(0, np.int64)
        self._sig: dict[str, np.ndarray] = {}
        self._base = 0                   # stream index of _sig[...][0]
        self._checked = 0                # next mwi index to test as a candidate
        self._st = _State()
        self._learning: list[tuple[int, int, int, int]] = []
        self.beats: list[Detection] = []

    # -- signal access -------------------------------------------------------------------------
    def signal(self, name: str, start: int, stop: int) -> np.ndarray:
        """Stage ``name`` ("hp", "e", "mwi", "bl") for stream indices [start, stop); zeros before 0."""
        arr = self._sig[name]
        lo, hi = start - self._base, stop - self._base
        if lo < 0 and self._base > 0:
            raise IndexError(f"{name}[{start}] is no longer kept")
        pad = max(0, -lo)
        return np.concatenate([np.zeros(pad, np.int64), arr[max(lo, 0):hi]])

    def process(self, chunk: np.ndarray) -> list[Detection]:
        chunk = np.asarray(chunk).astype(np.int64).ravel()
        if not len(chunk):
            return []
        if not self.n:
            self._raw = np.full(512, chunk[0], np.int64)
        ext = np.concatenate([self._raw, chunk])
        new = filter_stages(ext)
        for k, v in new.items():
            self._sig[k] = np.concatenate([self._sig.get(k, np.zeros(0, np.int64)), v])
        self.n += len(chunk)
        self._raw = ext[-512:]
        found = self._candidates()
        drop = len(self._sig["mwi"]) - KEEP
        if drop > 0:
            for k in self._sig:
                self._sig[k] = self._sig[k][drop:]
            self._base += drop
        return found

    # -- candidates and decisions ----------------------------------------------------------------
    def _candidates(self) -> list[Detection]:
        first, last = self._checked, self.n - W        # testable: i + W < n
        if last <= first:
            return []
        m = self.signal("mwi", first - W, last + W)
        win = np.lib.stride_tricks.sliding_window_view(m, W)
        before = win[:last - first].max(axis=1)          # m[i-W .. i-1]
        after = win[W + 1:W + 1 + last - first].max(axis=1)   # m[i+1 .. i+W]
        mid = m[W:W + last - first]
        idx = np.flatnonzero((mid > before) & (mid >= after) & (mid > 0)) + first
        self._checked = last
        found: list[Detection] = []
        for i in idx:
            new = self._decide(int(i), int(self.signal("mwi", i, i + 1)[0]))
            for d in new:
                d.at = int(i) + W
            found += new
        self.beats += found
        return found

    def _decide(self, i: int, peak: int) -> list[Detection]:
        slope = int(np.abs(self.signal("e", i - SEARCH, i + 1)).max())
        hp = np.abs(self.signal("hp", i - SEARCH, i + 1))
        c = (i, peak, slope, i - SEARCH + int(hp.argmax()) - HP_DELAY)
        st = self._st
        if not st.started:
            if i < LEARN:
                self._learning.append(c)
                return []
            top = max([p for _, p, _, _ in self._learning] + [peak])
            st.qrs = [top >> 1] * NBUF
            st.started = True
            out: list[Detection] = []
            for old in self._learning:
                out += self._judge(old)
            self._learning = []
            return out + self._judge(c)
        return self._judge(c)

    def _judge(self, c: tuple[int, int, int, int]) -> list[Detection]:
        st, out = self._st, []
        i, peak, slope, _ = c
        rr_mean = sum(st.rr) >> 3
        if st.last >= 0 and (i - st.last) * 2 > rr_mean * 3 and st.pending:
            j = max(range(len(st.pending)), key=lambda k: (st.pending[k][1], -k))
            if st.pending[j][1] > st.threshold() >> 1:
                out.append(self._accept(st.pending[j]))
        is_t = st.last >= 0 and i - st.last < T_WAVE and slope < st.last_slope >> 1
        if peak > st.threshold() and not is_t:
            out.append(self._accept(c))
        else:
            st.noise = st.noise[1:] + [peak]
            st.pending = (st.pending + [c])[-MAX_PENDING:]
        return out

    def _accept(self, c: tuple[int, int, int, int]) -> Detection:
        st = self._st
        i, peak, slope, r = c
        st.qrs = st.qrs[1:] + [peak]
        if st.last >= 0:
            st.rr = st.rr[1:] + [min(max(i - st.last, W), 5 * RATE)]
        pend = st.pending
        st.last, st.last_slope, st.pending = i, slope, [p for p in pend if p[0] > i]
        return Detection(r, peak, i)


def detect(x_units: np.ndarray, chunk: int = 36000) -> np.ndarray:
    """R-peak sample indices of a whole int signal (the streaming detector run over it)."""
    det = QrsDetector()
    for s in range(0, len(x_units), chunk):
        det.process(x_units[s:s + chunk])
    return np.array([b.r for b in det.beats], np.int64)
