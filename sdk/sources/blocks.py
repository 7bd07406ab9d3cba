"""Fixed-rate sensor samples grouped into blocks, with gap detection.

A gap is found from a sequence-number column (``seq_col``: a jump of more than one) or a time
column (``time_col`` with a known ``rate``: a step longer than 1.5 sample periods). Each gap adds
one to ``stats.gaps``; the block that follows it carries ``meta["gap"]`` = samples missing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from sdk.sources.base import SourceStats
from sdk.sources.common import Pacer
from sdk.sources.uri import bounded, optional

Entry = tuple[Any, float | None, Mapping[str, Any] | None]

BLOCK_OPTIONS = {
    "rate": (optional(bounded(float, 0.001, 1e6)), None),      # samples per second (CSV: inferred from a time column)
    "block": (bounded(int, 1, 1_000_000), 1),                    # samples per item
    "seq_col": (optional(bounded(int, 0, 10_000)), None),     # column holding a sequence counter (removed from data)
    "time_col": (optional(bounded(int, 0, 10_000)), None),    # column holding time stamps (removed from data)
    "time_scale": (bounded(float, 1e-12, 1e6), 1.0),           # seconds per time-column unit (0.001 for milliseconds)
    "realtime": (bool, False),
}


class GapDetector:
    """Splits a row into (values, missing samples before it) using its seq/time column."""

    def __init__(self, seq_col: int | None = None, time_col: int | None = None,
                 rate: float | None = None, time_scale: float = 1.0) -> None:
        self.seq_col, self.time_col, self.rate, self.time_scale = seq_col, time_col, rate, time_scale
        self._last_seq: int | None = None
        self._last_t: float | None = None
        self.drop = sorted(c for c in (seq_col, time_col) if c is not None)

    def split(self, row: Sequence[float]) -> tuple[list[float], int]:
        missing = 0
        if self.seq_col is not None:
            seq = int(row[self.seq_col])
            if self._last_seq is not None and seq > self._last_seq + 1:
                missing = seq - self._last_seq - 1
            self._last_seq = seq
        elif self.time_col is not None and self.rate:
            t = float(row[self.time_col]) * self.time_scale
            if self._last_t is not None:
                steps = (t - self._last_t) * self.rate
                if steps > 1.5:
                    missing = round(steps) - 1
            self._last_t = t
        values = [v for i, v in enumerate(row) if i not in self.drop] if self.drop else list(row)
        return values, missing


class Blocker:
    """Collects rows into float32 blocks [block, channels]; reports gaps seen inside each block."""

    def __init__(self, block: int, stats: SourceStats, rate: float | None) -> None:
        self.block, self.stats, self.rate = max(1, block), stats, rate
        self._rows: list[list[float]] = []
        self._gap = 0
        self._start = 0       # stream index of the first row in _rows (missing samples included)
        self._next = 0

    def add(self, values: list[float], missing: int) -> Entry | None:
        if missing:
            self.stats.gaps += 1
            self._gap += missing
            self._next += missing
        if not self._rows:
            self._start = self._next
        if self._rows and len(values) != len(self._rows[0]):
            self.stats.malformed += 1
            return None
        self._rows.append(values)
        self._next += 1
        return self.take() if len(self._rows) >= self.block else None

    def take(self) -> Entry | None:
        """The rows collected so far as one block (also the last, short one), or None."""
        if not self._rows:
            return None
        data = np.asarray(self._rows, dtype=np.float32)
        meta: dict[str, Any] = {"start": self._start, "gap": self._gap}
        if self.rate:
            meta["start_s"] = self._start / self.rate
        self._rows, self._gap = [], 0
        return data, None, meta


def paced_blocks(signal: np.ndarray, block: int, rate: float | None, realtime: bool,
                 stop: Any, start: int = 0) -> Iterator[Entry]:
    """Slices of ``signal`` [n, channels] of ``block`` samples, paced at ``rate/block`` per second."""
    pacer = Pacer((rate or 0) / block, realtime, stop)
    for i in range(0, len(signal), block):
        if stop.is_set():
            return
        pacer.wait()
        meta: dict[str, Any] = {"start": start + i, "gap": 0}
        if rate:
            meta["start_s"] = (start + i) / rate
        yield signal[i:i + block], None, meta
