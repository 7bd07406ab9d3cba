"""Fixtures for source tests: small real media files and a scripted camera (the only mock)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest


def frame_with(number: int, h: int = 48, w: int = 64) -> np.ndarray:
    """A BGR frame whose pixel values encode ``number`` (recoverable after lossy coding: the mean)."""
    return np.full((h, w, 3), number % 256, np.uint8)


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 12-frame 64×48 mp4v clip at 10 fps; frame i has brightness 20*i."""
    import cv2

    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    assert writer.isOpened()
    for i in range(12):
        writer.write(frame_with(20 * i))
    writer.release()
    return path


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import cv2

    folder = tmp_path_factory.mktemp("frames")
    for i in range(5):
        cv2.imwrite(str(folder / f"f{i:03d}.png"), frame_with(40 * i))
    (folder / "notes.txt").write_text("not an image")
    return folder


def sine(rate: int, seconds: float, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([x * (c + 1) / channels for c in range(channels)], axis=1)


class ScriptedCamera:
    """A capture_factory for camera hardware we do not have.

    ``opens`` scripts each call of the factory: an int N gives a capture that delivers N frames
    and then fails (a disconnect), ``None`` gives a capture that does not open, ``"forever"`` one
    that never stops. Frames encode a running counter; ``delay`` slows each read.
    """

    def __init__(self, opens: list[int | str | None], delay: float = 0.0) -> None:
        self.opens, self.delay = list(opens), delay
        self.calls = 0
        self.counter = 0
        self.released = 0
        self.lock = threading.Lock()

    def __call__(self) -> _Capture:
        plan = self.opens[min(self.calls, len(self.opens) - 1)]
        self.calls += 1
        return _Capture(self, plan)


class _Capture:
    def __init__(self, camera: ScriptedCamera, plan: int | str | None) -> None:
        self.camera, self.plan, self.served = camera, plan, 0
        self.open = plan is not None

    def isOpened(self) -> bool:
        return self.open

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.camera.delay:
            time.sleep(self.camera.delay)
        if not self.open or (self.plan != "forever" and self.served >= int(self.plan)):  # type: ignore[arg-type]
            return False, None
        self.served += 1
        with self.camera.lock:
            self.camera.counter += 1
            n = self.camera.counter
        return True, np.full((4, 4, 3), n % 256, np.uint8)

    def release(self) -> None:
        self.open = False
        self.camera.released += 1


@pytest.fixture
def scripted_camera() -> type[ScriptedCamera]:
    return ScriptedCamera


@pytest.fixture
def sine_wave():  # type: ignore[no-untyped-def]
    """``sine_wave(rate, seconds, freq=440, channels=1)`` → float32 [n, channels]."""
    return sine
