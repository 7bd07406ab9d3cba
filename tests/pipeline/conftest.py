"""Fixtures for the pipeline tests: a real in-memory source of numpy frames and a tiny ONNX model."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sdk.pipeline import BaseSink, Packet
from sdk.sources.base import BaseSource


class FrameSource(BaseSource):
    """``count`` frames (None: endless) whose pixels encode the index; optional pacing in fps,
    ``fail_at`` raises on that index, ``block_after`` blocks in a "read" until closed."""

    kind = "memory"

    def __init__(self, count: int | None = 100, hw: tuple[int, int] = (24, 32), live: bool = False,
                 fps: float | None = None, fail_at: int | None = None, block_after: int | None = None) -> None:
        super().__init__("memory://frames", live=live, fps=fps or 30.0)
        self.count, self.hw, self.pace = count, hw, fps
        self.fail_at, self.block_after = fail_at, block_after
        self.open_calls = self.close_calls = 0

    def _open(self) -> None:
        self.open_calls += 1

    def _close(self) -> None:
        self.close_calls += 1

    def frame(self, i: int) -> np.ndarray:
        f = np.zeros((*self.hw, 3), np.uint8)
        f[..., 0] = i % 256
        f[..., 1] = (i // 256) % 256
        f[..., 2] = np.arange(self.hw[1], dtype=np.uint8)[None, :]
        return f

    def _items(self) -> Iterator[tuple[Any, float | None, dict[str, Any] | None]]:
        i = 0
        t0 = time.monotonic()
        while self.count is None or i < self.count:
            if i == self.fail_at:
                raise OSError(f"read error at frame {i}")
            if i == self.block_after:
                self._closed.wait()  # like a camera read that only returns once released
                return
            if self.pace:
                delay = t0 + i / self.pace - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield self.frame(i), None, None
            i += 1


def index_of(frame: np.ndarray) -> int:
    return int(frame[0, 0, 0]) + 256 * int(frame[0, 0, 1])


class RecordingSink(BaseSink):
    """Keeps every packet; counts open/close calls."""

    def __init__(self, name: str | None = None, fail_at: int | None = None) -> None:
        super().__init__(name)
        self.packets: list[Packet] = []
        self.opened = self.closed = 0
        self.fail_at = fail_at

    def open(self) -> None:
        self.opened += 1

    def write(self, packet: Packet) -> None:
        if packet.item.seq == self.fail_at:
            raise ValueError(f"disk full at {packet.item.seq}")
        self.packets.append(packet)

    def close(self) -> None:
        self.closed += 1

    @property
    def seqs(self) -> list[int]:
        return [p.item.seq for p in self.packets]


@pytest.fixture
def frames() -> type[FrameSource]:
    return FrameSource


@pytest.fixture
def recorder() -> type[RecordingSink]:
    return RecordingSink


@pytest.fixture
def frame_index() -> Any:
    return index_of


@pytest.fixture
def no_pipeline_threads() -> Any:
    """Call with a pipeline name: asserts none of its threads is alive."""

    def check(name: str) -> None:
        alive = [t.name for t in threading.enumerate() if t.name.startswith(name + ":")]
        assert alive == [], f"threads still alive: {alive}"

    return check


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sdk.models.builtin import tiny_convnet

    return tiny_convnet(tmp_path_factory.mktemp("model") / "tiny.onnx", input_hw=(32, 32), channels=(4, 8),
                        classes=5)
