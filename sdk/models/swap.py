"""Hot swap: load and warm the next variant in a background thread; the caller swaps the reference
at the start of its next frame (``take``), so no frame is dropped, duplicated or run half on one
variant and half on another.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class LoadResult:
    """The outcome of one background load: ``loaded`` or ``error``."""

    key: tuple[str, str]
    reason: str
    loaded: Any = None
    error: BaseException | None = None


class BackgroundLoader:
    """Runs ``load(key)`` in a daemon thread, one at a time; ``take()`` hands over the result once."""

    def __init__(self, load: Callable[[tuple[str, str]], Any], name: str = "model") -> None:
        self._load = load
        self._name = name
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._result: LoadResult | None = None
        self._pending_key: tuple[str, str] | None = None

    @property
    def busy(self) -> bool:
        """A load is in flight or its result is waiting to be taken."""
        with self._lock:
            return self._pending_key is not None

    @property
    def pending(self) -> tuple[str, str] | None:
        with self._lock:
            return self._pending_key

    def request(self, key: tuple[str, str], reason: str, background: bool = True) -> bool:
        """Start loading ``key``; False if another load is still pending. With ``background=False``
        the load runs in the calling thread (tests, single-core boards)."""
        with self._lock:
            if self._pending_key is not None:
                return False
            self._pending_key = key
        if not background:
            self._work(key, reason)
            return True
        self._thread = threading.Thread(target=self._work, args=(key, reason), daemon=True,
                                        name=f"ember-load-{self._name}-{key[0]}")
        self._thread.start()
        return True

    def _work(self, key: tuple[str, str], reason: str) -> None:
        try:
            result = LoadResult(key, reason, loaded=self._load(key))
        except Exception as e:  # noqa: BLE001 - reported to the manager, which quarantines the variant
            result = LoadResult(key, reason, error=e)
        with self._lock:
            self._result = result

    def take(self) -> LoadResult | None:
        """The finished load, once (None while loading or idle)."""
        with self._lock:
            result, self._result = self._result, None
            if result is not None:
                self._pending_key = None
            return result

    def wait(self, timeout: float | None = None) -> None:
        """Block until the in-flight load ends (tests, shutdown)."""
        t = self._thread
        if t is not None:
            t.join(timeout)

    def discard(self) -> None:
        """Wait for an in-flight load and close what it loaded (shutdown)."""
        self.wait()
        result = self.take()
        if result is not None and result.loaded is not None:
            result.loaded.close()
