"""The one Source protocol and the item every source yields."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    """One unit from a source.

    ``data`` is a video frame (H×W×3 BGR uint8), an audio chunk (float32, samples×channels)
    or a block of sensor samples (float32, samples×channels). ``timestamp`` is
    ``time.monotonic()`` seconds at capture; ``seq`` counts from 0 per source, with no gaps
    except where the source itself lost items (then ``meta["gap"]`` says how many).
    """

    data: Any
    timestamp: float
    seq: int
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class SourceStats:
    """Counters a source keeps while it runs; all reads are safe from any thread."""

    delivered: int = 0
    dropped: int = 0
    reconnects: int = 0
    overflows: int = 0
    gaps: int = 0
    malformed: int = 0  # input records that could not be parsed and were skipped (serial lines)
    decode_errors: int = 0  # frames a file holds that could not be decoded (damaged clip); skipped

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


@runtime_checkable
class Source(Protocol):
    """open → iterate → close; also a context manager. Created by ``open_source(uri)``."""

    uri: str
    stats: SourceStats

    @property
    def meta(self) -> Mapping[str, Any]: ...

    def open(self) -> None: ...

    def close(self) -> None: ...

    def __iter__(self) -> Iterator[Item]: ...

    def __enter__(self) -> Source: ...  # noqa: PYI034

    def __exit__(self, *exc: object) -> None: ...


class BaseSource:
    """Shared plumbing: context manager, sequence numbers, stats, idempotent open/close.

    Subclasses implement ``_open``, ``_close`` and ``_items`` (yielding ``(data, timestamp, meta)``).
    """

    kind = "generic"

    def __init__(self, uri: str, **meta: Any) -> None:
        self.uri = uri
        self.stats = SourceStats()
        self._meta: dict[str, Any] = {"uri": uri, "kind": self.kind, **meta}
        self._opened = False
        self._closed = threading.Event()
        self._seq = 0

    @property
    def meta(self) -> Mapping[str, Any]:
        return self._meta

    def open(self) -> None:
        if not self._opened:
            self._closed.clear()
            try:
                self._open()
            except BaseException:
                self._close_quietly()
                raise
            self._opened = True

    def close(self) -> None:
        self._closed.set()
        if self._opened:
            self._opened = False
            self._close()

    def _close_quietly(self) -> None:
        """Release what a failed ``_open`` may have acquired; its own error is the one to report."""
        try:
            self._close()
        except Exception:  # a half-opened source may not close cleanly
            log.debug("%s: closing after a failed open also failed", self.uri, exc_info=True)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def __enter__(self) -> BaseSource:  # noqa: PYI034
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __iter__(self) -> Iterator[Item]:
        self.open()
        for data, ts, extra in self._items():
            item = Item(data=data, timestamp=ts if ts is not None else time.monotonic(), seq=self._seq,
                        meta={**self._meta, **extra} if extra else self._meta)
            self._seq += 1
            self.stats.delivered += 1
            yield item
            if self._closed.is_set():
                return

    def _open(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _close(self) -> None:  # pragma: no cover - overridden
        pass

    def _items(self) -> Iterator[tuple[Any, float | None, Mapping[str, Any] | None]]:  # pragma: no cover
        raise NotImplementedError
