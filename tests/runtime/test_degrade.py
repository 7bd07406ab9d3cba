"""The degradation ladder steps down under pressure and back up when it eases, without flapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sdk.degrade import CascadeStep, Degrader, ResolutionStep, SetStep, SkipStep, TierStep
from sdk.errors import ConfigError, ModelError
from sdk.events import EventBus
from sdk.models.manager import ModelManager
from sdk.testing import FakeClock, ScriptedDevice


def test_ladder_steps_down_in_order_and_back_up(model_folder: Path) -> None:
    clock = FakeClock()
    bus, events = EventBus(), []
    bus.subscribe(events.append)
    manager = ModelManager(model_folder, backends=["onnxruntime"], device=ScriptedDevice(clock), clock=clock,
                           bus=EventBus(), use_default_rules=False, background=False, initial="fp32")
    load = {"factor": 3.0}  # a CPU hog makes every millisecond of work cost `factor` ms
    calls = {"big": 0, "small": 0}
    seen_shapes = []

    def big(frame: np.ndarray) -> list[np.ndarray]:
        seen_shapes.append(frame.shape)
        calls["big"] += 1
        x = np.resize(frame.astype(np.float32).mean(axis=2) / 255.0, (1, 3, 32, 32)).astype(np.float32)
        clock.advance(0.02 * load["factor"] * frame.shape[0] / 64)  # cost grows with resolution
        return manager(x)

    def small(frame: np.ndarray) -> np.ndarray:
        calls["small"] += 1
        clock.advance(0.002)
        return np.array([0.9, 0.1]) if frame.mean() > 100 else np.array([0.4, 0.6])

    steps = [TierStep(manager), CascadeStep(small, escalate_below=0.7), SkipStep(every=2), ResolutionStep(0.5)]
    deg = Degrader(big, steps, budget_ms=33, clock=clock, timer=clock, bus=bus, min_dwell_s=3, window_s=1,
                   down="p95 > budget for 1s", up="headroom for 2s")
    rng = np.random.default_rng(0)
    # bright frames: the small model is sure; dark ones: it escalates to the big model
    frames = [rng.integers(0, 120 if i % 3 == 0 else 255, (64, 64, 3), dtype=np.uint8) for i in range(9)]
    outputs, levels = [], []
    for i in range(1500):
        if i == 700:
            load["factor"] = 0.5  # the hog goes away
        outputs.append(deg(frames[i % len(frames)]))
        levels.append(deg.level)
        clock.advance(1 / 30)
    assert len(outputs) == 1500 and all(o is not None for o in outputs)
    steps_taken = [(e.data["direction"], e.data["step"]) for e in events]
    downs = [s for d, s in steps_taken if d == "down"]
    ups = [s for d, s in steps_taken if d == "up"]
    assert downs == ["tier", "cascade", "skip", "resolution"]
    assert ups == list(reversed(downs))  # released in reverse order, all the way back
    assert levels[-1] == 0 and manager.policy.limit_quality is None
    assert (32, 32, 3) in seen_shapes and (64, 64, 3) in seen_shapes
    assert calls["small"] > 0
    # no flapping: once relieved it stays relieved
    first_up = next(i for i, lv in enumerate(levels) if i > 700 and lv == 0)
    assert all(lv == 0 for lv in levels[first_up:])


def test_skip_step_keeps_one_output_per_frame() -> None:
    every, frames = 3, 9
    s = SkipStep(every=every)
    s.engage()
    ran = []

    def run(x: int) -> int:
        ran.append(x)
        return x * 10

    out = [s.process(i, run) for i in range(frames)]
    # the spec: frames 0, every, 2·every, ... run; each other frame repeats the last result
    assert ran == list(range(0, frames, every))
    assert out == [(i - i % every) * 10 for i in range(frames)]
    s.release()
    assert s.process(100, run) == 1000 and ran[-1] == 100  # released: every frame runs again
    s.engage()  # re-engaged: counting starts over, so the first frame runs
    assert s.process(7, run) == 70 and s.process(8, run) == 70


def _fake_ladder(cost: dict, steps: list, clock: FakeClock, bus: EventBus, **kw) -> Degrader:
    def work(x: int) -> int:
        clock.advance(cost["ms"] / 1000)
        return x

    kw = {"budget_ms": 30, "clock": clock, "timer": clock, "bus": bus, "min_dwell_s": 1, "window_s": 1,
          "down": "p95 > budget for 1s", "up": "headroom for 1s", **kw}
    return Degrader(work, steps, **kw)


def test_a_saving_measured_while_the_load_fell_is_released_on_trial() -> None:
    """The load drops right as a step engages, so the step seems to save 90 %: without a trial
    release it would stay engaged for ever."""
    clock, bus, events = FakeClock(), EventBus(), []
    bus.subscribe(events.append)
    knob = {"quality": "high"}
    cost = {"ms": 50.0}
    deg = _fake_ladder(cost, [SetStep("quality", knob, quality="low")], clock, bus, probe_s=20)
    while deg.level == 0:
        deg(0)
        clock.advance(0.01)
    assert knob == {"quality": "low"}
    cost["ms"] = 5.0  # the load falls at the same moment; the step itself saves nothing here
    t_engaged = clock()
    while deg.level == 1 and clock() - t_engaged < 100:
        deg(0)
        clock.advance(0.01)
    released_after = clock() - t_engaged
    assert deg.level == 0 and knob == {"quality": "high"}
    assert 20 <= released_after < 25  # not before probe_s of calm, and soon after it
    assert [(e.data["direction"], e.data["step"]) for e in events] == [("down", "quality"), ("up", "quality")]


def test_set_step_checks_its_settings_up_front() -> None:
    class Vad:
        threshold_db = -45.0

    vad = Vad()
    step = SetStep("vad_gate", vad, threshold_db=-30.0)
    step.engage()
    assert vad.threshold_db == -30.0
    step.release()
    assert vad.threshold_db == -45.0
    with pytest.raises(ConfigError, match="Vad has no setting 'threshold'"):
        SetStep("vad_gate", vad, threshold=-30.0)
    with pytest.raises(ConfigError, match="give the settings"):
        SetStep("vad_gate", vad)


def test_bad_ladders_are_clear_errors(model_folder: Path) -> None:
    with pytest.raises(ConfigError, match="budget_ms must be a positive"):
        Degrader(lambda x: x, [SkipStep()], budget_ms=0)
    with pytest.raises(ConfigError, match="at least one step"):
        Degrader(lambda x: x, [], budget_ms=30)
    with pytest.raises(ConfigError, match="use it as a pipeline sink"):
        Degrader(None, [SkipStep()], budget_ms=30)(1)
    clock = FakeClock()
    with ModelManager(model_folder, backends=["onnxruntime"], device=ScriptedDevice(clock), clock=clock,
                      bus=EventBus(), use_default_rules=False, background=False) as manager:
        with pytest.raises(ModelError, match="needs a latency budget"):
            manager.degrader()
        ladder = manager.degrader(steps=[SkipStep()], budget_ms=20)
        assert [s.name for s in ladder.steps] == ["tier", "skip"] and ladder.clock is clock


def test_the_old_import_path_of_the_test_doubles_still_works() -> None:
    from sdk.device import FakeClock as OldFakeClock
    from sdk.device import ScriptedDevice as OldScriptedDevice

    assert OldFakeClock is FakeClock and OldScriptedDevice is ScriptedDevice
