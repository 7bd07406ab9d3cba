"""Test doubles for code that reads the clock or the device: no sleeping, no real battery needed.

    from sdk.testing import FakeClock, ScriptedDevice, drain, windows
    clock = FakeClock()
    dev = ScriptedDevice(clock, battery_percent=drain(100, 2.0), cpu_percent=windows(20, (10, 20, 95)))
    clock.advance(15); dev.snapshot()   # battery 70 %, CPU 95 %

``ScriptedDevice`` also works on the real clock (``ScriptedDevice(time.monotonic, ...)``) for demos and
benches that script the battery but run real models. The old path ``sdk.device.FakeClock`` still works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sdk.device import STATE_FIELDS, Clock, Device


class FakeClock:
    """A controllable monotonic clock: ``clock()`` returns ``clock.t``; ``advance(dt)`` moves it."""

    def __init__(self, start: float = 0.0) -> None:
        self.t = float(start)

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> float:
        self.t += float(dt)
        return self.t

    sleep = advance


Script = float | bool | str | None | Callable[[float], Any]


def drain(start: float, per_s: float, floor: float = 0.0) -> Callable[[float], float]:
    """A battery level falling ``per_s`` percent per second from ``start`` (for ``ScriptedDevice``)."""
    return lambda t: max(floor, start - per_s * t)


def windows(base: Any, *spans: tuple[float, float, Any]) -> Callable[[float], Any]:
    """``base``, except ``value`` during each ``(t0, t1, value)`` span (a load spike, heat, charging)."""

    def at(t: float) -> Any:
        for t0, t1, value in spans:
            if t0 <= t < t1:
                return value
        return base

    return at


class ScriptedDevice(Device):
    """A device whose readings are functions of the time since ``start`` on ``clock``.

        clock = FakeClock()
        dev = ScriptedDevice(clock, battery_percent=drain(100, 2.0), charging=False,
                             cpu_percent=windows(20, (10, 20, 95)), temperature_c=50)
        clock.advance(15); dev.snapshot()   # battery 70 %, CPU 95 %
    """

    def __init__(self, clock: Clock | None = None, **script: Script) -> None:
        unknown = set(script) - set(STATE_FIELDS)
        if unknown:
            raise ValueError(f"ScriptedDevice: unknown fields {sorted(unknown)} (known: {STATE_FIELDS})")
        clock = clock or FakeClock()
        self.script = dict(script)
        self.start = clock()
        super().__init__([self._read], clock)

    def _read(self) -> dict[str, Any]:
        t = self.clock() - self.start
        return {k: (v(t) if callable(v) else v) for k, v in self.script.items()}

    def set(self, **script: Script) -> None:
        """Change scripted fields from now on (e.g. ``set(charging=True)``)."""
        self.script.update(script)
