"""Small pieces shared by file-like sources: real-time pacing and path checks."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sdk.errors import SourceError


class Pacer:
    """Sleeps so that item ``i`` is released at ``start + i / rate`` (``rate`` items per second).

    With ``rate`` None or ``enabled`` False it never sleeps. A consumer that falls behind is not
    made to catch up in a burst later than one item period.
    """

    def __init__(self, rate: float | None, enabled: bool = True,
                 stop: threading.Event | None = None) -> None:
        self.period = 1.0 / rate if (enabled and rate and rate > 0) else 0.0
        self.stop = stop or threading.Event()
        self._next: float | None = None

    def wait(self) -> None:
        if not self.period:
            return
        now = time.monotonic()
        if self._next is None or now - self._next > self.period:
            self._next = now  # first item, or we fell behind: restart the schedule
        delay = self._next - now
        if delay > 0:
            self.stop.wait(delay)
        self._next += self.period


def require_path(uri: str, target: str, what: str = "file") -> Path:
    """``target`` as a Path that exists, else a ``SourceError`` naming it."""
    if not target:
        raise SourceError(uri, f"no {what} given", "write file://relative/path or file:///absolute/path")
    path = Path(target).expanduser()
    if not path.exists():
        raise SourceError(uri, f"{what} {path} does not exist",
                          f"relative paths are taken from {Path.cwd()}")
    return path
