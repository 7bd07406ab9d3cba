"""The bounded queue between two pipeline threads, with a back-pressure or a drop-oldest policy."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

POLICIES = ("auto", "block", "drop_oldest")

END: Any = type("End", (), {"__repr__": lambda self: "END"})()
"""Marker put after the last item: the reader passes it on and exits (the queue drains first)."""


def resolve_policy(policy: str, live: bool) -> str:
    """``auto`` becomes ``drop_oldest`` for a live source and ``block`` for a file."""
    if policy not in POLICIES:
        from sdk.errors import ConfigError

        raise ConfigError(f"unknown queue policy {policy!r}: use one of {', '.join(POLICIES)}")
    if policy == "auto":
        return "drop_oldest" if live else "block"
    return policy


class StageQueue:
    """FIFO of at most ``maxsize`` items.

    ``block``: ``put`` waits while full (nothing lost, the producer slows down); a waiting producer
    is woken once the queue is down to half (not after every ``get``), so a fast producer refills it
    in a burst instead of being switched in and out for each item.
    ``drop_oldest``: ``put`` never waits; when full the oldest item is removed and counted in
    ``dropped``. ``close`` aborts: waiters wake, ``get`` returns ``END``, ``put`` returns False,
    and items left inside are counted in ``discarded``.
    """

    __slots__ = (
        "_closed",
        "_drop",
        "_items",
        "_lock",
        "_low",
        "_not_empty",
        "_not_full",
        "discarded",
        "dropped",
        "maxsize",
        "name",
        "policy",
    )

    def __init__(self, name: str, maxsize: int, policy: str) -> None:
        if maxsize < 1:
            from sdk.errors import ConfigError

            raise ConfigError(f"queue {name!r}: queue_size must be >= 1, got {maxsize}")
        if policy not in ("block", "drop_oldest"):
            raise ValueError(f"queue {name!r}: resolve policy {policy!r} first")
        self.name = name
        self.maxsize = maxsize
        self.policy = policy
        self.dropped = 0
        self.discarded = 0
        self._items: deque[Any] = deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        self._drop = policy == "drop_oldest"
        self._low = maxsize // 2  # a blocked producer is woken at or below this many items

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, value: Any) -> bool:
        """Append ``value``; False when the queue was closed (the value is then discarded)."""
        items = self._items
        with self._lock:
            if self._drop:
                if len(items) >= self.maxsize and not self._closed:
                    items.popleft()
                    self.dropped += 1
            else:
                while len(items) >= self.maxsize and not self._closed:
                    self._not_full.wait()
            if self._closed:
                if value is not END:
                    self.discarded += 1
                return False
            items.append(value)
            self._not_empty.notify()
            return True

    def get(self) -> Any:
        """The oldest item; waits while empty. ``END`` once closed."""
        items = self._items
        with self._lock:
            while not items:
                if self._closed:
                    return END
                self._not_empty.wait()
            value = items.popleft()
            if not self._drop and len(items) <= self._low:
                self._not_full.notify()
            return value

    def close(self) -> None:
        """Abort: wake every waiter and discard what is left (counted in ``discarded``)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.discarded += sum(1 for v in self._items if v is not END)
            self._items.clear()
            self._not_empty.notify_all()
            self._not_full.notify_all()
