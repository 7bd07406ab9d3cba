"""Fixed-bin histograms over rolling windows. Bins are fixed per feature (from the reference profile,
or default ranges), so windows merge by adding counts and a window costs no allocation per frame."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np


class Binning:
    """Uniform bins on ``[lo, hi]`` for each continuous feature; values outside go to the end bins."""

    def __init__(self, names: Sequence[str], lo: Sequence[float], hi: Sequence[float], bins: int = 10) -> None:
        self.names = tuple(names)
        self.lo = np.asarray(lo, dtype=np.float64)
        self.hi = np.asarray(hi, dtype=np.float64)
        self.bins = int(bins)
        span = np.where(self.hi > self.lo, self.hi - self.lo, 1.0)
        self.scale = self.bins / span
        self.rows = np.arange(len(self.names))
        self.lo_list = self.lo.tolist()
        self.scale_list = self.scale.tolist()

    def index(self, values: np.ndarray) -> np.ndarray:
        """Bin index per feature (NaN values must be masked by the caller)."""
        idx = ((values - self.lo) * self.scale).astype(np.int64)
        return np.clip(idx, 0, self.bins - 1, out=idx)

    def index_of(self, row: int, values: np.ndarray) -> np.ndarray:
        idx = ((values - self.lo[row]) * self.scale[row]).astype(np.int64)
        return np.clip(idx, 0, self.bins - 1, out=idx)


class WindowStats:
    """Counts for one window: ``counts[feature, bin]``, ``class_counts[class]``, an embedding mean."""

    def __init__(self, binning: Binning, n_classes: int = 0) -> None:
        self.binning = binning
        self.counts = np.zeros((len(binning.names), binning.bins), dtype=np.int64)
        self.class_counts = np.zeros(max(n_classes, 0), dtype=np.int64)
        self.emb_sum: np.ndarray | None = None
        self.emb_n = 0
        self.frames = 0

    def reset(self) -> None:
        self.counts.fill(0)
        self.class_counts.fill(0)
        self.emb_sum = None
        self.emb_n = 0
        self.frames = 0

    def add(self, values: np.ndarray) -> None:
        """One frame: ``values`` has one entry per feature, NaN where absent."""
        b = self.binning
        counts = self.counts
        top = b.bins - 1
        for row, v in enumerate(values.tolist()):
            if v == v:  # noqa: PLR0124 - not NaN, the fastest scalar test
                i = int((v - b.lo_list[row]) * b.scale_list[row])
                counts[row, 0 if i < 0 else min(i, top)] += 1
        self.frames += 1

    def add_many(self, row: int, values: np.ndarray) -> None:
        """Several values of one feature (e.g. the confidences of all detections in a frame)."""
        if values.size == 1:
            self.counts[row, self.binning.index_of(row, values)[0]] += 1
        elif values.size:
            self.counts[row] += np.bincount(self.binning.index_of(row, values), minlength=self.binning.bins)

    def add_classes(self, classes: np.ndarray) -> None:
        if not classes.size:
            return
        top = int(classes.max())
        if top >= self.class_counts.size:
            grown = np.zeros(top + 1, dtype=np.int64)
            grown[: self.class_counts.size] = self.class_counts
            self.class_counts = grown
        if classes.size == 1:
            self.class_counts[int(classes[0])] += 1
        else:
            np.add.at(self.class_counts, classes[classes >= 0], 1)

    def add_embedding(self, emb: np.ndarray) -> None:
        if self.emb_sum is None or self.emb_sum.shape != emb.shape:
            self.emb_sum = np.zeros(emb.shape, dtype=np.float64)
            self.emb_n = 0
        self.emb_sum += emb
        self.emb_n += 1

    def merge(self, other: WindowStats) -> None:
        """Add ``other``'s counts into this window (same binning)."""
        self.counts += other.counts
        if other.class_counts.size > self.class_counts.size:
            grown = np.zeros(other.class_counts.size, dtype=np.int64)
            grown[: self.class_counts.size] = self.class_counts
            self.class_counts = grown
        self.class_counts[: other.class_counts.size] += other.class_counts
        if other.emb_sum is not None:
            if self.emb_sum is None or self.emb_sum.shape != other.emb_sum.shape:
                self.emb_sum, self.emb_n = other.emb_sum.copy(), other.emb_n
            else:
                self.emb_sum += other.emb_sum
                self.emb_n += other.emb_n
        self.frames += other.frames

    def embedding_mean(self) -> np.ndarray | None:
        return None if self.emb_sum is None or not self.emb_n else self.emb_sum / self.emb_n

    def summary(self) -> dict[str, object]:
        """Per-feature mean (from bin centres), counts, class frequencies: a JSON-ready dict."""
        b = self.binning
        centres = b.lo[:, None] + (np.arange(b.bins)[None, :] + 0.5) / b.scale[:, None]
        totals = self.counts.sum(axis=1)
        means = np.where(totals > 0, (self.counts * centres).sum(axis=1) / np.maximum(totals, 1), np.nan)
        return {
            "frames": int(self.frames),
            "features": {n: {"mean": None if np.isnan(m) else round(float(m), 4), "n": int(t),
                             "counts": self.counts[i].tolist()}
                         for i, (n, m, t) in enumerate(zip(b.names, means, totals, strict=True))},
            "class_counts": self.class_counts.tolist(),
        }


class RollingWindow:
    """A window of the last ``blocks`` blocks of ``block_size`` frames each.

    ``add`` returns the merged window each time a block completes (else None): drift is evaluated
    once per block, on the last ``blocks × block_size`` frames.
    """

    def __init__(self, binning: Binning, n_classes: int = 0, block_size: int = 128, blocks: int = 4) -> None:
        self.binning = binning
        self.block_size = block_size
        self.current = WindowStats(binning, n_classes)
        self.done: deque[WindowStats] = deque(maxlen=blocks)
        self._n_classes = n_classes

    def frame_done(self) -> WindowStats | None:
        """Call after adding one frame's values to ``current``; returns the merged window when a block fills."""
        if self.current.frames < self.block_size:
            return None
        recycled = self.done[0] if len(self.done) == self.done.maxlen else None
        self.done.append(self.current)
        if recycled is not None:
            recycled.reset()
            self.current = recycled
        else:
            self.current = WindowStats(self.binning, self._n_classes)
        return self.merged()

    def merged(self) -> WindowStats:
        out = WindowStats(self.binning, self._n_classes)
        for w in self.done:
            out.merge(w)
        return out
