"""Graceful degradation: a ladder of steps the app configures, engaged one by one while the latency
budget is missed and released one by one (last engaged, first released) when it holds again; every
change is a ``degrade.step`` event (``direction`` down/up, ``step``, ``level``, ``reason``, ``p95_ms``).

The model manager gives the first rung (its fastest measured tier, ``TierStep``); the app adds its own.
Steps that wrap the work (``CascadeStep``, ``SkipStep``, ``ResolutionStep``) act on each call of the
degrader; ``SetStep`` changes a setting of anything else (a VAD gate, a hop, a camera's fps) and puts
it back on release::

    # vision: lower tier, then skip frames, then halve the resolution
    ladder = manager.degrader(lambda frame: manager(preprocess(frame)),
                              [SkipStep(every=2), ResolutionStep(scale=0.5)], budget_ms=33)
    pipe = Pipeline(source, stages=[Stage("infer", ladder), ...])

    # speech: lower tier, then raise the VAD gate, then lengthen the hop
    ladder = manager.degrader(lambda chunk: manager(features(chunk)),
                              [SetStep("vad_gate", vad, threshold_db=-30.0),
                               SetStep("hop", chunker, hop_s=1.0)], budget_ms=100)
    pipe = Pipeline(mic, stages=[Stage("chunk", chunker), Stage("infer", ladder)], sinks=[ladder, ...])

**What is measured.** By default the latency of each call of the degrader (the wrapped work). Passed
to a ``Pipeline`` as a sink too (as in the speech example), it measures each item's end-to-end
latency instead (source timestamp → sinks, queueing included): use that when a step lowers the
*load* rather than the time of one call (skipping frames, a longer hop, a stricter gate).
``Degrader(None, steps, ...)`` is a controller only, fed by the pipeline.

**When.** Pressure and relief are rules over the same names as the manager's (``p95``, ``budget``,
``battery``, ``temperature``, ``cpu``, …, see ``sdk.models.rules``); the defaults are
``"p95 > budget for 2s"`` (step down) and ``"headroom for 10s"`` (step up), where ``headroom``
means the p95 expected without the last step (today's p95 divided by what that step saved, measured
``window_s`` after it was engaged) is under ``headroom_ratio × budget``. Steps are at least
``min_dwell_s`` apart, the next step down waits until the last one's saving is measured, and the
latency window starts afresh after each step, so the ladder does not flap.
A saving measured while the load itself was falling looks too large and would hold its step for
ever: after ``probe_s`` (60 s) with p95 under ``headroom_ratio × budget`` the step is released on
trial (if the budget is missed again, the down rule engages it again and re-measures it).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

import numpy as np

from sdk.device import Device, DeviceState
from sdk.errors import ConfigError
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


class SetStep(Step):
    """Set attributes (or keys, for a dict) of ``target`` to ``values`` while engaged; the previous
    values come back on release. E.g. ``SetStep("vad_gate", vad, threshold_db=-30.0)``."""

    order = 9

    def __init__(self, name: str, target: Any, **values: Any) -> None:
        super().__init__()
        if not values:
            raise ConfigError(f"SetStep {name!r}: give the settings to change, e.g. SetStep({name!r}, obj, hop_s=1.0)")
        self.name, self.target, self.values = name, target, values
        self._saved: dict[str, Any] = {}
        for key in values:
            self._get(key)  # a misspelt setting fails here, not in the middle of an overload

    def _get(self, key: str) -> Any:
        try:
            return self.target[key] if isinstance(self.target, MutableMapping) else getattr(self.target, key)
        except (KeyError, AttributeError):
            raise ConfigError(f"SetStep {self.name!r}: {type(self.target).__name__} has no setting {key!r}") from None

    def _set(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(self.target, MutableMapping):
                self.target[key] = value
            else:
                setattr(self.target, key, value)

    def engage(self) -> None:
        self._saved = {k: self._get(k) for k in self.values}
        self._set(self.values)
        super().engage()

    def release(self) -> None:
        self._set(self._saved)
        super().release()


class ExitStep(SetStep):
    """Lower a cascade's / early-exit chain's confidence threshold (``sdk.compress.cascade.Chain``), so
    more inputs leave early: by default to the ``low_battery_threshold`` its manifest records (chosen
    on validation data with a looser accuracy budget). ``ModelManager.degrader()`` adds it for a folder
    with exits; engage it on a low battery with ``down="battery < 20 and not charging"``."""

    order = 9

    def __init__(self, chain: Any, threshold: float | None = None) -> None:
        low = threshold if threshold is not None else chain.low_battery_threshold
        if low is None:
            raise ConfigError("ExitStep: the chain records no low_battery_threshold; pass ExitStep(chain, threshold)")
        super().__init__("exit_threshold", chain, threshold=float(low))


def _through(step: Step, nxt: Callable[[Any], Any], x: Any) -> Any:
    return step.process(x, nxt)


class Degrader:
    """Wrap ``fn`` (frame → result) with a degradation ``steps`` ladder; callable like ``fn``, and a
    pipeline sink (see the module docstring). ``fn=None``: a controller fed only as a sink."""

    def __init__(self, fn: Callable[[Any], Any] | None, steps: Sequence[Step], *, budget_ms: float,
                 down: str | Rule = "p95 > budget for 2s", up: str | Rule = "headroom for 10s",
                 device: Device | None = None, min_dwell_s: float = 5.0, window_s: float = 3.0,
                 headroom_ratio: float = 0.8, probe_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 timer: Callable[[], float] = time.perf_counter, bus: EventBus | None = None,
                 name: str = "app") -> None:
        if not budget_ms or budget_ms <= 0:
            raise ConfigError(f"Degrader {name!r}: budget_ms must be a positive number of milliseconds")
        if not steps:
            raise ConfigError(f"Degrader {name!r}: give at least one step")
        self.fn, self.steps = fn, list(steps)
        self.budget_ms, self.min_dwell_s, self.window_s = budget_ms, min_dwell_s, window_s
        self.headroom_ratio, self.probe_s = headroom_ratio, probe_s
        self._calm_since: float | None = None
        self.down = down if isinstance(down, Rule) else make_rule(down, "step_down")
        self.up = up if isinstance(up, Rule) else make_rule(up, "step_up")
        self.device, self.clock, self.timer = device, clock, timer
        self.bus, self.name = bus or default_bus, name
        self.level = 0
        self._before: list[float | None] = []  # per engaged step: the p95 that made it engage
        self._saving: list[float | None] = []  # per engaged step: p95 after / p95 before
        self._last_step = -float("inf")
        self._lat = TimedWindow(512)
        self._lock = threading.Lock()
        self._end_to_end = False

    def __call__(self, x: Any) -> Any:
        if self.fn is None:
            raise ConfigError(f"Degrader {self.name!r} wraps no function (fn=None): use it as a pipeline sink")
        with self._lock:
            self._update()
            t0 = self.timer()
            y = self._chain(x)
            if not self._end_to_end:
                self._lat.add(self.clock(), (self.timer() - t0) * 1e3)
            return y

    # ---- as a pipeline sink: each item's end-to-end latency is the signal -----------------------------
    def open(self) -> None:
        self._end_to_end = True

    def write(self, pkt: Any) -> None:
        with self._lock:
            self._lat.add(self.clock(), float(pkt.latency_ms))
            self._update()

    def close(self) -> None:
        self._end_to_end = False

    def _chain(self, x: Any) -> Any:
        call: Callable[[Any], Any] = self.fn  # type: ignore[assignment]
        for step in sorted(self.steps, key=lambda s: s.order, reverse=True):
            call = functools.partial(_through, step, call)
        return call(x)

    def p95(self) -> float | None:
        """p95 latency (ms) of the wrapped chain over the last ``window_s``; None with < 3 frames."""
        return self._lat.percentile(95, since=self.clock() - self.window_s)

    def _values(self, p95: float | None) -> dict[str, Any]:
        s = self.device.snapshot() if self.device is not None else DeviceState(timestamp=0.0)
        if self.level and self._saving[-1] is None and self._before[-1] and p95 is not None \
                and self.clock() - self._last_step >= self.window_s:
            self._saving[-1] = max(p95 / self._before[-1], 1e-3)  # type: ignore[operator]
        saving = self._saving[-1] if self.level else None
        limit = self.headroom_ratio * self.budget_ms
        headroom = bool(saving and p95 is not None and p95 / saving < limit)
        calm = p95 is not None and p95 < limit
        if not calm:
            self._calm_since = None
        elif self._calm_since is None:
            self._calm_since = self.clock()
        elif self.level and self.clock() - self._calm_since >= self.probe_s:
            headroom = True  # a trial release: the saving was measured while the load itself fell
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
        measured = self.level == 0 or self._saving[-1] is not None  # the last step's effect is known
        if down and self.level < len(self.steps) and measured:
            step = self.steps[self.level]
            step.engage()
            self.level += 1
            self._saving.append(None)
            self._before.append(p95)
            self._emit("down", step, self.down.name, p95, now)
        elif up and not down and self.level > 0:
            self.level -= 1
            step = self.steps[self.level]
            step.release()
            self._saving.pop()
            self._before.pop()
            self._emit("up", step, self.up.name, p95, now)

    def _emit(self, direction: str, step: Step, reason: str, p95: float | None, now: float) -> None:
        self._last_step, self._calm_since = now, None
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
        self.level, self._saving, self._before = 0, [], []
