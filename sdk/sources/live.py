"""Live sources (cameras, serial ports): a grab thread, a bounded ring that keeps the newest items,
and reconnection with capped exponential backoff.

A subclass implements ``_connect()`` (return a connection or raise ``SourceError``),
``_grab(conn)`` (return ``(data, timestamp, extra_meta)``, ``None`` for "nothing yet", or raise
``Disconnected``/``OSError`` when the device went away) and ``_release(conn)``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from sdk.errors import SourceError
from sdk.sources.base import BaseSource
from sdk.sources.uri import bounded

log = logging.getLogger(__name__)

Entry = tuple[Any, float | None, Mapping[str, Any] | None]

# Options every live source accepts (see ``uri.options``).
LIVE_OPTIONS = {
    "buffer": (bounded(int, 1, 100_000), 2),             # ring capacity in items; older items are dropped
    "backoff": (bounded(float, 0.0, 3600.0), 0.5),       # first reconnect delay, seconds; doubles per try
    "backoff_max": (bounded(float, 0.0, 3600.0), 10.0),  # cap of the reconnect delay
    "retries": (bounded(int, -1, 1_000_000_000), -1),    # give up after this many failed reconnects (-1: never)
}


class Disconnected(Exception):
    """Raised by ``_grab`` when the device stopped delivering (unplugged, stream ended)."""


class LiveSource(BaseSource):
    """Grabs in a background thread from ``open()`` until ``close()``; iteration yields the newest
    items. ``backoff_delays`` lists every reconnect delay waited (for logs and tests)."""

    join_timeout_s = 5.0

    def __init__(self, uri: str, *, buffer: int = 2, backoff: float = 0.5, backoff_max: float = 10.0,
                 retries: int = -1, **meta: Any) -> None:
        super().__init__(uri, live=True, **meta)
        if buffer < 1:
            raise SourceError(uri, f"buffer={buffer} must be at least 1", "use buffer=2 (the default)")
        self.capacity = buffer
        self.backoff = max(0.0, backoff)
        self.backoff_max = max(self.backoff, backoff_max)
        self.retries = retries
        self.backoff_delays: list[float] = []
        self._ring: deque[Entry] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._ended = False

    # ---- subclass hooks ---------------------------------------------------------------------------
    def _connect(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _grab(self, conn: Any) -> Entry | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _release(self, conn: Any) -> None:
        pass

    # ---- BaseSource -------------------------------------------------------------------------------
    def _open(self) -> None:
        conn = self._connect()
        self._ring.clear()
        self._error, self._ended = None, False
        self._thread = threading.Thread(target=self._run, args=(conn,), daemon=True,
                                        name=f"ember-grab {self.uri}")
        self._thread.start()

    def _close(self) -> None:
        with self._cond:
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.join_timeout_s)
            if thread.is_alive():
                log.warning("%s: grab thread still blocked in a read after %.0f s; left as a daemon",
                            self.uri, self.join_timeout_s)
        self._thread = None

    @property
    def grabbing(self) -> bool:
        """True while the grab thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _items(self) -> Iterator[Entry]:
        while True:
            with self._cond:
                while not self._ring and not self._ended and not self._closed.is_set():
                    self._cond.wait(0.1)
                if self._ring:
                    entry = self._ring.popleft()
                elif self._error is not None:
                    raise self._error
                else:
                    return
            yield entry

    # ---- grab thread ------------------------------------------------------------------------------
    def _push(self, entry: Entry) -> None:
        with self._cond:
            while len(self._ring) >= self.capacity:
                self._ring.popleft()
                self.stats.dropped += 1
            self._ring.append(entry)
            self._cond.notify()

    def _run(self, conn: Any) -> None:
        try:
            while conn is not None and not self._closed.is_set():
                try:
                    entry = self._grab(conn)
                except (Disconnected, OSError) as e:
                    log.warning("%s: disconnected (%s); reconnecting", self.uri, e or type(e).__name__)
                    self._safe_release(conn)
                    conn = None  # released: the finally below must not release it again
                    conn = self._reconnect()
                    continue
                if entry is not None:
                    self._push(entry)
        except Exception as e:  # noqa: BLE001 - handed to the consumer, raised from iteration
            self._error = e if isinstance(e, SourceError) else SourceError(self.uri, f"read failed: {e!r}")
        finally:
            self._safe_release(conn)
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _safe_release(self, conn: Any) -> None:
        if conn is None:
            return
        try:
            self._release(conn)
        except Exception as e:  # noqa: BLE001 - releasing a dead device may fail; nothing to do
            log.debug("%s: release failed: %s", self.uri, e)

    def next_delay(self, attempt: int) -> float:
        """Delay before reconnect try ``attempt`` (0-based): ``backoff * 2**attempt``, capped."""
        return min(self.backoff * (2.0 ** min(attempt, 60)), self.backoff_max)

    def _reconnect(self) -> Any:
        attempt = 0
        while not self._closed.is_set():
            if 0 <= self.retries <= attempt:
                raise SourceError(self.uri, f"device lost and not back after {attempt} reconnect tries",
                                  "check the cable/network, or raise retries= (-1 retries forever)")
            delay = self.next_delay(attempt)
            self.backoff_delays.append(delay)
            if self._closed.wait(delay):
                return None
            attempt += 1
            try:
                conn = self._connect()
            except SourceError as e:
                log.info("%s: reconnect try %d failed: %s", self.uri, attempt, e.problem)
                continue
            with self._cond:
                self.stats.reconnects += 1
            log.warning("%s: reconnected after %d tries", self.uri, attempt)
            return conn
        return None


def stamp() -> float:
    """The timestamp of a grabbed item (monotonic seconds)."""
    return time.monotonic()
