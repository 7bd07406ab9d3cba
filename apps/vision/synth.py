"""Synthetic tracking sequences: real object crops moving over a real (or drawn) background, with
exact ground-truth tracks. Used by the tracking benchmark and the demo clip."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Sprite:
    image: np.ndarray  # BGR crop of one object
    label: str


@dataclass
class Sequence:
    frames: list[np.ndarray]
    gt: list[dict[int, np.ndarray]]  # per frame: object id -> x1 y1 x2 y2
    labels: dict[int, str]


def road(width: int = 640, height: int = 360) -> np.ndarray:
    """A drawn road scene (sky, grass, asphalt, lane marks) for clips without a photo background."""
    import cv2

    img = np.zeros((height, width, 3), np.uint8)
    img[: height // 3] = (200, 170, 120)
    img[height // 3:] = (70, 120, 60)
    top = height // 3
    cv2.fillPoly(img, [np.array([[0, height], [width, height], [width, top + 20], [0, top + 20]], np.int32)],
                 (90, 90, 90))
    for x in range(0, width, 80):
        cv2.rectangle(img, (x, (top + height) // 2 + 20), (x + 40, (top + height) // 2 + 26), (230, 230, 230), -1)
    return img


def moving_objects(background: np.ndarray, sprites: list[Sprite], frames: int = 60, seed: int = 0,
                   height_frac: tuple[float, float] = (0.18, 0.3)) -> Sequence:
    """Each sprite crosses the background on a straight line at constant speed (alternating
    directions, so objects pass each other); boxes are exact, clipped to the frame."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = background.shape[:2]
    paths = []
    for i, s in enumerate(sprites):
        sh = int(h * rng.uniform(*height_frac))
        sw = max(8, int(s.image.shape[1] * sh / s.image.shape[0]))
        img = cv2.resize(s.image, (sw, sh), interpolation=cv2.INTER_AREA)
        lane = (i * 0.61803) % 1.0  # spread the objects over the frame's height
        y = 0.05 * h + lane * max(0.0, 0.9 * h - sh)
        x0, x1 = (-0.3 * sw, w - 0.7 * sw) if i % 2 == 0 else (w - 0.7 * sw, -0.3 * sw)
        start = rng.uniform(0, 0.3) * frames
        paths.append((img, x0, x1, y, start, start + rng.uniform(0.6, 0.7) * frames))
    out = Sequence([], [], {i: s.label for i, s in enumerate(sprites)})
    for f in range(frames):
        frame = background.copy()
        boxes = {}
        for i, (img, x0, x1, y, t0, t1) in enumerate(paths):
            if not t0 <= f <= t1:
                continue
            x = x0 + (x1 - x0) * (f - t0) / (t1 - t0)
            box = _paste(frame, img, round(x), round(y))
            if box is not None:
                boxes[i] = box
        out.frames.append(frame)
        out.gt.append(boxes)
    return out


def _paste(frame: np.ndarray, img: np.ndarray, x: int, y: int) -> np.ndarray | None:
    h, w = frame.shape[:2]
    sh, sw = img.shape[:2]
    fx0, fy0, fx1, fy1 = max(x, 0), max(y, 0), min(x + sw, w), min(y + sh, h)
    if fx1 - fx0 < sw * 0.6 or fy1 - fy0 < 4:  # mostly outside: not a ground-truth object
        if fx1 > fx0 and fy1 > fy0:
            frame[fy0:fy1, fx0:fx1] = img[fy0 - y:fy1 - y, fx0 - x:fx1 - x]
        return None
    frame[fy0:fy1, fx0:fx1] = img[fy0 - y:fy1 - y, fx0 - x:fx1 - x]
    return np.array([fx0, fy0, fx1, fy1], np.float32)


def write_clip(frames: list[np.ndarray], path: str, fps: float = 15.0) -> str:
    import cv2

    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return path
