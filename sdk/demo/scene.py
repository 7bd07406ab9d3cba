"""The demo's generated scene: a panning public-domain photo (Grace Hopper, shipped in matplotlib's
sample data) with a moving ball. The label is the quadrant the ball is in, so the demo model's
answers can be checked against ground truth. Used by the demo clip and by the model's training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")
PERIOD = 384  # frames after which the daylight scene repeats: any window of PERIOD frames looks alike
INPUT_HW = (64, 64)


def background_image() -> np.ndarray:
    """Grace Hopper's portrait (US Navy, public domain) from matplotlib, else a generated gradient."""
    import cv2

    try:
        from matplotlib import cbook

        img = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    except (ImportError, OSError, ValueError):  # no matplotlib, or one without sample data
        img = None
    if img is not None:
        return img
    y, x = np.mgrid[0:480, 0:640]
    return np.stack([x * 255 // 640, y * 255 // 480, (x + y) * 255 // 1120], -1).astype(np.uint8)


def quadrant_of(cx: float, cy: float, w: int, h: int) -> int:
    return int(cy >= h / 2) * 2 + int(cx >= w / 2)


def draw_ball(img: np.ndarray, cx: float, cy: float, r: int, color: tuple[int, int, int]) -> None:
    import cv2

    cv2.circle(img, (int(cx), int(cy)), r + 2, (20, 20, 20), -1, lineType=cv2.LINE_AA)
    cv2.circle(img, (int(cx), int(cy)), r, color, -1, lineType=cv2.LINE_AA)


@dataclass
class SceneFrame:
    image: np.ndarray
    quadrant: int
    center: tuple[float, float]


class Scene:
    """Frame ``i`` of the clip: the photo pans, the ball follows a Lissajous path, both repeating
    every ``PERIOD`` frames; from
    ``dusk_from`` on the light fades to ``dusk_level`` (a drift the telemetry should notice)."""

    def __init__(self, size: tuple[int, int] = (320, 240), dusk_from: int | None = None,
                 dusk_level: float = 0.4) -> None:
        import cv2

        self.w, self.h = size
        bg = background_image()
        scale = max(self.w * 1.4 / bg.shape[1], self.h * 1.4 / bg.shape[0])
        self.bg = cv2.resize(bg, (int(bg.shape[1] * scale), int(bg.shape[0] * scale)), interpolation=cv2.INTER_AREA)
        self.dusk_from = dusk_from
        self.dusk_level = dusk_level

    def frame(self, i: int) -> SceneFrame:
        phase = 2 * np.pi * i / PERIOD
        max_x, max_y = self.bg.shape[1] - self.w, self.bg.shape[0] - self.h
        ox = int((0.5 + 0.5 * np.sin(6 * phase)) * max_x)
        oy = int((0.5 + 0.5 * np.cos(3 * phase)) * max_y)
        img = self.bg[oy:oy + self.h, ox:ox + self.w].copy()
        r = self.h // 10
        cx = self.w / 2 + (self.w / 2 - r - 4) * np.sin(phase)
        cy = self.h / 2 + (self.h / 2 - r - 4) * np.sin(2 * phase + 1.0)
        draw_ball(img, cx, cy, r, (40, 200, 255))
        if self.dusk_from is not None and i >= self.dusk_from:
            img = (img.astype(np.float32) * self.dusk_level).astype(np.uint8)
        return SceneFrame(img, quadrant_of(cx, cy, self.w, self.h), (cx, cy))


def preprocess(frame: np.ndarray) -> np.ndarray:
    """BGR uint8 H×W×3 → float32 [1, 3, 64, 64] RGB in 0..1 (the demo model's input)."""
    import cv2

    small = cv2.resize(frame, INPUT_HW[::-1], interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255.0


def write_clip(path: str | Path, frames: int = 900, size: tuple[int, int] = (320, 240),
               dusk_from: int | None = None, fps: float = 30.0) -> list[int]:
    """Write the scene as an mp4 and return the ground-truth quadrant of every frame."""
    import cv2

    from sdk.errors import EmberError

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not writer.isOpened():
        raise EmberError(f"cannot write {path}: OpenCV has no mp4v encoder here")
    scene, truth = Scene(size, dusk_from), []
    for i in range(frames):
        f = scene.frame(i)
        writer.write(f.image)
        truth.append(f.quadrant)
    writer.release()
    return truth
