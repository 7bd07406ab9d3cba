"""One event path: the manager, the degradation ladder, drift detection and the pipeline
publish ``Event``s on an ``EventBus``; telemetry, the CLI and tests subscribe to it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """``kind`` is dotted, e.g. ``tier.switch``, ``tier.quarantine``, ``degrade.step``, ``drift.state``,
    ``pipeline.error``. ``data`` is JSON-serialisable."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    timestamp: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Listener = Callable[[Event], None]


class EventBus:
    """Thread-safe publish/subscribe. A listener that raises is logged, never breaks the publisher."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Add ``listener``; returns a function that removes it."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def publish(self, kind: str, **data: Any) -> Event:
        event = Event(kind, data)
        self.emit(event)
        return event

    def emit(self, event: Event) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken listener must not stop inference
                log.exception("event listener %r failed on %s", listener, event.kind)


default_bus = EventBus()
