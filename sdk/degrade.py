"""Graceful degradation: a ladder of steps the app configures, engaged one by one under pressure and
released one by one when conditions improve, each reported as a ``degrade.step`` event.

    degrader = Degrader(lambda frame: manager(preprocess(frame)), [
        TierStep(manager),                          # 1. the manager's fastest tier
        CascadeStep(small_model, escalate_below=0.5),  # 2. small model first, big one only when unsure
        SkipStep(every=2),                          # 3. run every 2nd frame, reuse the last result
        ResolutionStep(scale=0.5),                  # 4. halve the frame before preprocessing
    ], budget_ms=33)
    pipe = Pipeline(source, stages=[Stage("infer", degrader), ...])

Pressure and relief are rules over the same names as the manager's (``p95``, ``budget``,
``battery``, ``temperature``, ``cpu``, …, see ``sdk.models.rules``); the defaults are
``"p95 > budget for 2s"`` (step down) and ``"headroom for 10s"`` (step up), where ``headroom``
means the p95 expected without the last step (today's p95 divided by what that step saved when it
was engaged) is under ``headroom_ratio × budget``. Steps are at least ``min_dwell_s`` apart.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sdk.device import Device, DeviceState
from sdk.events import EventBus, default_bus
from sdk.models.rules import Rule, make_rule
from sdk.pipeline.stats import TimedWindow


class Step:
    """One rung of the ladder; ``process(x, nxt)`` runs the rest of the chain (``order``: outermost first)."""

    name = "step"
    order = 9

    def __init__(self) -> None:
        self.engaged = False

    def engage(self) -> None:
        self.engaged = True

    def release(self) -> None:
        self.engaged = False

    def process(self, x: Any, nxt: Callable[[Any], Any]) -> Any:
        return nxt(x)


class TierStep(Step):
    """Cap a ``ModelManager`` at its fastest measured tier."""

    name, order = "tier", 3

    def __init__(self, manager: Any) -> None:
        super().__init__()
        self.manager = manager

    def engage(self) -> None:
        super().engage()
        self.manager.limit(self.manager.fastest_tier())

    def release(self) -> None:
        super().release()
        self.manager.limit(None)


def top_probability(y: Any) -> float:
    """Confidence of a classifier output (a probability vector, or a list whose first item is one)."""
    arr = np.asarray(y[0] if isinstance(y, (list, tuple)) else y)
    return float(arr.max())


class CascadeStep(Step):
    """Run ``small`` first; run the big model (the rest of the chain) only when ``confidence`` of the
    small result is below ``escalate_below``."""

    name, order = "cascade", 2

    def __init__(self, small: Callable[[Any], Any], escalate_below: float = 0.5,
                 confidence: Callable[[Any], float] = top_probability) -> None:
        super().__init__()
        self.small, self.escalate_below, self.confidence = small, escalate_below, confidence
        self.escalated = 0
        self.answered_small = 0

    def process(self, x: Any, nxt: Callable[[Any], Any]) -> Any:
        if not self.engaged:
            return nxt(x)
        y = self.small(x)
        if self.confidence(y) >= self.escalate_below:
            self.answered_small += 1
            return y
        self.escalated += 1
        return nxt(x)


class SkipStep(Step):
    """Run one frame in ``every``, counted from when the step is engaged (frames 0, every, 2·every,
    …); the others reuse the last result (one output per frame, always)."""

    name, order = "skip", 0

    def __init__(self, every: int = 2) -> None:
        super().__init__()
        self.every = max(2, int(every))
        self._n = 0
        self._last: Any = None
        self._have = False

    def engage(self) -> None:
        super().engage()
        self._n = 0

    def process(self, x: Any, nxt: Callable[[Any], Any]) -> Any:
        if self.engaged:
            skip = self._have and self._n % self.every != 0
            self._n += 1
            if skip:
                return self._last
        self._last, self._have = nxt(x), True
        return self._last


def resize_image(x: Any, scale: float) -> Any:
    """Scale an H×W×C (or H×W) image with OpenCV area interpolation."""
    import cv2

    h, w = x.shape[:2]
    return cv2.resize(x, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)


class ResolutionStep(Step):
    """Shrink the input by ``scale`` before the rest of the chain (put the preprocessing inside the
    chain, so it works on fewer pixels; a model with a fixed input size still gets its size)."""

    name, order = "resolution", 1

    def __init__(self, scale: float = 0.5, resize: Callable[[Any, float], Any] = resize_image) -> None:
        super().__init__()
        self.scale, self.resize = scale, resize

    def process(self, x: Any, nxt: Callable[[Any], Any]) -> Any:
        return nxt(self.resize(x, self.scale) if self.engaged else x)


def _through(step: Step, nxt: Callable[[Any], Any], x: Any) -> Any:
    return step.process(x, nxt)


class Degrader:
    """Wrap ``fn`` (frame → result) with a degradation ``steps`` ladder; callable like ``fn``."""

    def __init__(self, fn: Callable[[Any], Any], steps: Sequence[Step], *, budget_ms: float,
                 down: str | Rule = "p95 > budget for 2s", up: str | Rule = "headroom for 10s",
                 device: Device | None = None, min_dwell_s: float = 5.0, window_s: float = 3.0,
                 headroom_ratio: float = 0.8, clock: Callable[[], float] = time.monotonic,
                 timer: Callable[[], float] = time.perf_counter, bus: EventBus | None = None,
                 name: str = "app") -> None:
        self.fn, self.steps = fn, list(steps)
        self.budget_ms, self.min_dwell_s, self.window_s = budget_ms, min_dwell_s, window_s
        self.headroom_ratio = headroom_ratio
        self.down = down if isinstance(down, Rule) else make_rule(down, "step_down")
        self.up = up if isinstance(up, Rule) else make_rule(up, "step_up")
        self.device, self.clock, self.timer = device, clock, timer
        self.bus, self.name = bus or default_bus, name
        self.level = 0
        self._saving: list[float | None] = []  # p95 after / p95 before, per engaged step
        self._before: float | None = None
        self._last_step = -float("inf")
        self._lat = TimedWindow(512)
        self._lock = threading.Lock()

    def __call__(self, x: Any) -> Any:
        with self._lock:
            self._update()
            t0 = self.timer()
            y = self._chain(x)
            self._lat.add(self.clock(), (self.timer() - t0) * 1e3)
            return y

    def _chain(self, x: Any) -> Any:
        call: Callable[[Any], Any] = self.fn
        for step in sorted(self.steps, key=lambda s: s.order, reverse=True):
            call = functools.partial(_through, step, call)
        return call(x)

    def p95(self) -> float | None:
        """p95 latency (ms) of the wrapped chain over the last ``window_s``; None with < 3 frames."""
        return self._lat.percentile(95, since=self.clock() - self.window_s)

    def _values(self, p95: float | None) -> dict[str, Any]:
        s = self.device.snapshot() if self.device is not None else DeviceState(timestamp=0.0)
        if self.level and self._saving[-1] is None and self._before and p95 is not None \
                and self.clock() - self._last_step >= self.window_s:
            self._saving[-1] = max(p95 / self._before, 1e-3)
        saving = self._saving[-1] if self.level else None
        headroom = bool(saving and p95 is not None and p95 / saving < self.headroom_ratio * self.budget_ms)
        return {"battery": s.battery_percent, "charging": s.charging, "temperature": s.temperature_c,
                "cpu": s.cpu_percent, "mem": s.mem_percent, "power_mode": s.power_mode, "p50": None,
                "p95": p95, "budget": self.budget_ms, "headroom": headroom, "tier": None, "level": self.level}

    def _update(self) -> None:
        now, p95 = self.clock(), self.p95()
        values = self._values(p95)
        down = self.down.update(values, now, self.min_dwell_s)
        up = self.up.update(values, now, self.min_dwell_s)
        if now - self._last_step < self.min_dwell_s:
            return
        if down and self.level < len(self.steps):
            step = self.steps[self.level]
            step.engage()
            self.level += 1
            self._saving.append(None)
            self._before = p95
            self._emit("down", step, self.down.name, p95, now)
        elif up and not down and self.level > 0:
            self.level -= 1
            step = self.steps[self.level]
            step.release()
            self._saving.pop()
            self._emit("up", step, self.up.name, p95, now)

    def _emit(self, direction: str, step: Step, reason: str, p95: float | None, now: float) -> None:
        self._last_step = now
        self._lat.clear()
        self.down.restart(now)
        self.up.restart(now)
        self.bus.publish("degrade.step", app=self.name, direction=direction, step=step.name, level=self.level,
                         reason=reason, p95_ms=None if p95 is None else round(p95, 3), budget_ms=self.budget_ms)

    def engaged(self) -> list[str]:
        return [s.name for s in self.steps[: self.level]]

    def reset(self) -> None:
        """Release every step (e.g. when the app restarts)."""
        for s in reversed(self.steps[: self.level]):
            s.release()
        self.level, self._saving = 0, []
