"""Regions and lines over tracked objects: ``enter``/``leave`` events for a region of interest
(rectangle or polygon) and ``cross`` events with per-class, per-direction counts for a line.

    zones = Zones([Region.parse("100,80,300,200"), Line.parse("0,240,640,240")])
    for event in zones.update(tracks, frame=i):   # tracks: detections with track_id
        print(event)                               # {"event": "enter", "zone": "roi1", ...}

A track's position is its box's bottom centre (where a person or vehicle touches the ground),
or its centre with ``anchor="center"``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sdk.detect.detector import Detection
from sdk.errors import ConfigError


def _numbers(spec: str, what: str) -> list[float]:
    try:
        values = [float(v) for v in spec.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{what} {spec!r}: expected comma-separated numbers") from None
    return values


def anchor_point(box: Sequence[float], anchor: str = "bottom") -> tuple[float, float]:
    x1, y1, x2, y2 = box
    return ((x1 + x2) / 2, y2 if anchor == "bottom" else (y1 + y2) / 2)


@dataclass
class Region:
    """A polygon (``[(x, y), ...]``, at least 3 points); ``Region.parse("x,y,w,h")`` makes a rectangle."""

    points: list[tuple[float, float]]
    name: str = "roi"
    inside: dict[int, bool] = field(default_factory=dict)
    occupants: int = 0  # tracks inside in the latest frame

    @classmethod
    def parse(cls, spec: str, name: str = "roi") -> Region:
        v = _numbers(spec, "--roi")
        if len(v) == 4:
            x, y, w, h = v
            if w <= 0 or h <= 0:
                raise ConfigError(f"--roi {spec!r}: width and height must be positive")
            return cls([(x, y), (x + w, y), (x + w, y + h), (x, y + h)], name)
        if len(v) >= 6 and len(v) % 2 == 0:
            return cls(list(zip(v[::2], v[1::2])), name)
        raise ConfigError(f"--roi {spec!r}: give x,y,w,h or a polygon x1,y1,x2,y2,x3,y3,...")

    def contains(self, x: float, y: float) -> bool:
        """Even-odd rule point-in-polygon."""
        inside = False
        pts = self.points
        for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1]):
            if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
        return inside

    def update(self, track_id: int, point: tuple[float, float]) -> str | None:
        now = self.contains(*point)
        before = self.inside.get(track_id)
        self.inside[track_id] = now
        if before is None:
            return "enter" if now else None
        return None if now == before else ("enter" if now else "leave")


@dataclass
class Line:
    """A counting line from ``a`` to ``b``; ``forward`` crossings go from its left side to its right
    side (looking from ``a`` to ``b``, image coordinates with y down)."""

    a: tuple[float, float]
    b: tuple[float, float]
    name: str = "line"
    last: dict[int, tuple[float, float]] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)

    @classmethod
    def parse(cls, spec: str, name: str = "line") -> Line:
        v = _numbers(spec, "--line")
        if len(v) != 4 or (v[0], v[1]) == (v[2], v[3]):
            raise ConfigError(f"--line {spec!r}: give x1,y1,x2,y2 (two different points)")
        return cls((v[0], v[1]), (v[2], v[3]), name)

    def _side(self, p: tuple[float, float]) -> float:
        (ax, ay), (bx, by) = self.a, self.b
        return (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax)

    def _segments_meet(self, p: tuple[float, float], q: tuple[float, float]) -> bool:
        d1, d2 = self._side(p), self._side(q)
        (ax, ay), (bx, by) = self.a, self.b

        def side(u: tuple[float, float], v: tuple[float, float], w: tuple[float, float]) -> float:
            return (v[0] - u[0]) * (w[1] - u[1]) - (v[1] - u[1]) * (w[0] - u[0])
        return d1 * d2 < 0 and side(p, q, (ax, ay)) * side(p, q, (bx, by)) <= 0

    def update(self, track_id: int, point: tuple[float, float], label: str) -> str | None:
        prev = self.last.get(track_id)
        self.last[track_id] = point
        if prev is None or not self._segments_meet(prev, point):
            return None
        direction = "forward" if self._side(prev) < 0 else "backward"
        self.counts[(label, direction)] += 1
        return direction

    def count_table(self) -> dict[str, dict[str, int]]:
        table: dict[str, dict[str, int]] = {}
        for (label, direction), n in sorted(self.counts.items()):
            table.setdefault(label, {"forward": 0, "backward": 0})[direction] = n
        return table


class Zones:
    """Apply regions and lines to each frame's tracks; ``update`` returns the frame's events."""

    def __init__(self, regions: Sequence[Region] = (), lines: Sequence[Line] = (), anchor: str = "bottom") -> None:
        if anchor not in ("bottom", "center"):
            raise ConfigError(f"anchor must be 'bottom' or 'center', got {anchor!r}")
        self.regions, self.lines, self.anchor = list(regions), list(lines), anchor

    def update(self, tracks: Sequence[Detection], frame: int | None = None) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for r in self.regions:
            r.occupants = 0
        for t in tracks:
            if t.track_id is None:
                continue
            p = anchor_point(t.box, self.anchor)
            base = {"track_id": t.track_id, "label": t.label, "frame": frame, "point": [round(p[0], 1), round(p[1], 1)]}
            for r in self.regions:
                kind = r.update(t.track_id, p)
                r.occupants += r.inside[t.track_id]
                if kind:
                    events.append({"event": kind, "zone": r.name, **base})
            for line in self.lines:
                direction = line.update(t.track_id, p, t.label)
                if direction:
                    events.append({"event": "cross", "zone": line.name, "direction": direction, **base})
        return events

    def counts(self) -> dict[str, Any]:
        return {
            **{line.name: line.count_table() for line in self.lines},
            **{r.name: {"inside": r.occupants} for r in self.regions},
        }


def draw_zones(frame: np.ndarray, zones: Zones) -> None:
    import cv2

    for r in zones.regions:
        pts = np.array(r.points, np.int32).reshape(-1, 1, 2)
        cv2.polylines(frame, [pts], True, (0, 200, 255), 2)
    for line in zones.lines:
        a, b = tuple(int(v) for v in line.a), tuple(int(v) for v in line.b)
        cv2.line(frame, a, b, (255, 0, 255), 2)
        total = sum(line.counts.values())
        cv2.putText(frame, f"{line.name}: {total}", (a[0] + 4, a[1] - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (255, 0, 255), 1, cv2.LINE_AA)
