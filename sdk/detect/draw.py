"""Draw detections (boxes, labels, scores, track ids and trails) on a BGR frame."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sdk.detect.detector import Detection


def colour(key: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class or track id."""
    hue = (key * 47) % 180
    import cv2

    hsv = np.uint8([[[hue, 220, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_detections(frame: np.ndarray, detections: Sequence[Detection], thickness: int = 2) -> np.ndarray:
    """Draw in place (and return) ``frame``; tracked objects are coloured by id, others by class."""
    import cv2

    for d in detections:
        x1, y1, x2, y2 = (round(v) for v in d.box)
        c = colour(d.track_id if d.track_id is not None else d.class_id)
        cv2.rectangle(frame, (x1, y1), (x2, y2), c, thickness)
        text = f"{d.label} {d.score:.2f}" + (f" #{d.track_id}" if d.track_id is not None else "")
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        y = max(th + base, y1)
        cv2.rectangle(frame, (x1, y - th - base), (x1 + tw + 2, y), c, -1)
        cv2.putText(frame, text, (x1 + 1, y - base), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return frame
