"""Multi-object tracking: a constant-velocity Kalman filter per object and IoU association in two
rounds (ByteTrack-style: confident detections first, then low-score ones to keep tracks alive).

    tracker = Tracker()
    for frame in frames:
        tracks = tracker.update(detector.detect(frame))   # detections with ``track_id`` set
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from sdk.detect.boxes import box_iou
from sdk.detect.detector import Detection

_F = np.eye(8)
_F[:4, 4:] = np.eye(4)
_H = np.eye(4, 8)


def _xyxy_to_z(b: np.ndarray) -> np.ndarray:
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1]])


@dataclass
class Track:
    """One tracked object; ``x`` is the Kalman state ``cx, cy, w, h`` and their velocities."""

    track_id: int
    det: Detection
    x: np.ndarray
    p: np.ndarray
    hits: int = 1
    missed: int = 0
    age: int = 0
    history: list[tuple[float, float]] = field(default_factory=list)

    @property
    def box(self) -> np.ndarray:
        cx, cy, w, h = self.x[:4]
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])

    def _noise(self) -> tuple[np.ndarray, np.ndarray]:
        s = max(float(self.x[2]), float(self.x[3]), 1.0)
        q = np.diag([(s / 20) ** 2] * 2 + [(s / 20) ** 2] * 2 + [(s / 160) ** 2] * 4)
        r = np.diag([(s / 20) ** 2] * 4)
        return q, r

    def predict(self) -> None:
        q, _ = self._noise()
        self.x = _F @ self.x
        self.x[2:4] = np.maximum(self.x[2:4], 1.0)
        self.p = _F @ self.p @ _F.T + q
        self.age += 1
        self.missed += 1

    def update(self, det: Detection) -> None:
        _, r = self._noise()
        z = _xyxy_to_z(np.asarray(det.box))
        s = _H @ self.p @ _H.T + r
        k = self.p @ _H.T @ np.linalg.inv(s)
        self.x = self.x + k @ (z - _H @ self.x)
        self.p = (np.eye(8) - k @ _H) @ self.p
        self.det = det
        self.hits += 1
        self.missed = 0
        self.history = (self.history + [(float(self.x[0]), float(self.x[1]))])[-32:]


def _new_track(track_id: int, det: Detection) -> Track:
    z = _xyxy_to_z(np.asarray(det.box))
    s = max(z[2], z[3], 1.0)
    p = np.diag([(s / 10) ** 2] * 4 + [(s / 4) ** 2] * 4)
    return Track(track_id, det, np.concatenate([z, np.zeros(4)]), p, history=[(float(z[0]), float(z[1]))])


def _greedy(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, col) by descending IoU, each row and column at most once, IoU >= threshold."""
    pairs = []
    if iou.size == 0:
        return pairs
    order = np.dstack(np.unravel_index(np.argsort(-iou, axis=None), iou.shape))[0]
    used_r, used_c = set(), set()
    for r, c in order:
        if iou[r, c] < threshold:
            break
        if r not in used_r and c not in used_c:
            pairs.append((int(r), int(c)))
            used_r.add(r)
            used_c.add(c)
    return pairs


class Tracker:
    """IoU + Kalman tracker. ``high``: score for a detection to start or first-match a track;
    ``low``: weaker detections only extend existing tracks; ``max_missed`` frames before a track
    is dropped; ``min_hits`` matches before a track is reported (``confirmed``)."""

    def __init__(self, high: float = 0.4, low: float = 0.15, iou_threshold: float = 0.3,
                 max_missed: int = 15, min_hits: int = 2, class_aware: bool = True) -> None:
        self.high, self.low, self.iou_threshold = high, low, iou_threshold
        self.max_missed, self.min_hits, self.class_aware = max_missed, min_hits, class_aware
        self.tracks: list[Track] = []
        self._next_id = 1
        self.frames = 0

    def _associate(self, tracks: list[Track], dets: list[Detection], threshold: float) -> tuple[list, list, list]:
        if not tracks or not dets:
            return [], list(range(len(tracks))), list(range(len(dets)))
        iou = box_iou(np.array([t.box for t in tracks]), np.array([d.box for d in dets]))
        if self.class_aware:
            same = np.array([[t.det.class_id == d.class_id for d in dets] for t in tracks])
            iou = np.where(same, iou, 0.0)
        pairs = _greedy(iou, threshold)
        mt, md = {p[0] for p in pairs}, {p[1] for p in pairs}
        return pairs, [i for i in range(len(tracks)) if i not in mt], [j for j in range(len(dets)) if j not in md]

    def update(self, detections: list[Detection]) -> list[Detection]:
        """Advance one frame; returns the confirmed tracks seen in this frame, with ``track_id``."""
        self.frames += 1
        for t in self.tracks:
            t.predict()
        high = [d for d in detections if d.score >= self.high]
        low = [d for d in detections if self.low <= d.score < self.high]
        pairs, free_t, free_d = self._associate(self.tracks, high, self.iou_threshold)
        for ti, di in pairs:
            self.tracks[ti].update(high[di])
        rest = [self.tracks[i] for i in free_t]
        pairs2, _, _ = self._associate(rest, low, max(self.iou_threshold, 0.5))
        for ti, di in pairs2:
            rest[ti].update(low[di])
        for di in free_d:
            self.tracks.append(_new_track(self._next_id, high[di]))
            self._next_id += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        return [replace(t.det, box=tuple(float(v) for v in t.box), track_id=t.track_id)  # type: ignore[arg-type]
                for t in self.tracks if t.missed == 0 and t.hits >= self.min_hits]

    def reset(self) -> None:
        self.tracks, self._next_id, self.frames = [], 1, 0
