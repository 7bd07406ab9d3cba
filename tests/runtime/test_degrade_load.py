"""The degradation ladder under real load, in real time: a slow stage (a CPU burner whose cost grows
with the pixels it is given) drives p95 over the budget, the ladder engages its steps one by one (each
a ``degrade.step`` event) and releases them, last first, when the load goes; nothing is simulated but
the load itself. A second test runs a live pipeline whose load is the number of chunks let through a
gate: the ladder, fed the end-to-end latency as a sink, raises the gate (``SetStep``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from sdk.degrade import Degrader, ResolutionStep, SetStep, SkipStep
from sdk.events import EventBus
from sdk.models.manager import ModelManager
from sdk.pipeline import Pipeline, Stage
from sdk.testing import FakeClock, ScriptedDevice

BUDGET_MS = 60.0  # large next to the scheduling noise of a shared, busy machine


def burn(ms: float) -> None:
    """Keep a core busy for ``ms`` milliseconds of wall time (the slow stage)."""
    end = time.perf_counter() + ms / 1000.0
    while time.perf_counter() < end:
        sum(range(200))


def _run_until(deg: Any, frame: np.ndarray, done: Any, timeout_s: float) -> None:
    t_end = time.monotonic() + timeout_s
    while not done() and time.monotonic() < t_end:
        deg(frame)


def _steps(events: list[Any]) -> list[tuple[str, str, float]]:
    return [(e.data["direction"], e.data["step"], e.data["p95_ms"]) for e in events if e.kind == "degrade.step"]


def test_the_whole_ladder_engages_and_releases_under_a_cpu_burner(model_folder: Path) -> None:
    bus, events = EventBus(), []
    bus.subscribe(events.append)
    manager = ModelManager(model_folder, backends=["onnxruntime"], device=ScriptedDevice(FakeClock()),
                           bus=bus, use_default_rules=False, initial="fp32")
    load = {"ms_per_kpx": 75.0}  # heavy: 307 ms at 64×64, 77 ms at 32×32 (still over the 60 ms budget)
    shapes = []

    def work(frame: np.ndarray) -> list[np.ndarray]:
        shapes.append(frame.shape[:2])
        burn(load["ms_per_kpx"] * frame.shape[0] * frame.shape[1] / 1000)
        x = np.resize(frame.astype(np.float32).mean(axis=2) / 255.0, (1, 3, 32, 32)).astype(np.float32)
        return manager(x)

    ladder = manager.degrader(work, [ResolutionStep(0.5), SkipStep(every=2)], budget_ms=BUDGET_MS,
                              down="p95 > budget for 0.3s", up="headroom for 0.6s", min_dwell_s=0.6,
                              window_s=1.0, probe_s=2.0)
    frame = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    _run_until(ladder, frame, lambda: ladder.level == 3, timeout_s=30)
    assert ladder.engaged() == ["tier", "resolution", "skip"], _steps(events)
    assert manager.policy.limit_quality is not None  # the tier step caps the manager
    _run_until(ladder, frame, lambda: False, timeout_s=1.0)  # still heavy: the last step measures its saving
    assert ladder.level == 3
    heavy_frames = len(shapes)
    load["ms_per_kpx"] = 2.0  # the burner eases: 8 ms at 64×64
    _run_until(ladder, frame, lambda: ladder.level == 0, timeout_s=30)
    settle = time.monotonic() + 1.5
    while time.monotonic() < settle:  # relieved for good: no step in the next 1.5 s
        ladder(frame)
    manager.close()
    steps = _steps(events)
    assert [(d, s) for d, s, _ in steps] == [("down", "tier"), ("down", "resolution"), ("down", "skip"),
                                            ("up", "skip"), ("up", "resolution"), ("up", "tier")]
    assert all(p95 > BUDGET_MS for d, _, p95 in steps if d == "down")  # engaged because the budget was missed
    assert all(p95 < BUDGET_MS for d, _, p95 in steps if d == "up")
    assert ladder.level == 0 and manager.policy.limit_quality is None
    assert (32, 32) in shapes[:heavy_frames] and shapes[-1] == (64, 64)  # halved under load, full size after


def _wait(cond: Any, timeout_s: float) -> None:
    t_end = time.monotonic() + timeout_s
    while not cond() and time.monotonic() < t_end:
        time.sleep(0.05)


def test_a_pipeline_sink_ladder_raises_a_gate_until_latency_holds() -> None:
    """Speech-like: 100 chunks/s from a paced source, each chunk let through the gate costs 15 ms of
    CPU (150 % of a core: the queue fills). The ladder, a sink so it sees the queueing, raises the gate
    (``SetStep``) until the end-to-end p95 holds, and lowers it again when the cost falls."""
    bus, events = EventBus(), []
    bus.subscribe(events.append)
    gate = {"keep_every": 1}
    cost = {"ms": 15.0}
    n = {"i": 0}

    def gated_work(chunk: np.ndarray) -> float:
        n["i"] += 1
        if n["i"] % gate["keep_every"]:
            return 0.0  # below the gate: no inference
        burn(cost["ms"])
        return float(chunk.mean())

    ladder = Degrader(None, [SetStep("gate", gate, keep_every=2), SetStep("gate2", gate, keep_every=4)],
                      budget_ms=60, down="p95 > budget for 0.3s", up="headroom for 0.6s", min_dwell_s=0.6,
                      window_s=0.6, probe_s=3.0, bus=bus, name="speech")
    pipe = Pipeline("synthetic://tone?rate=16000&chunk_ms=10&realtime=true", stages=[Stage("infer", gated_work)],
                    sinks=[ladder], policy="drop_oldest", queue_size=8)
    pipe.start()
    try:
        _wait(lambda: ladder.level >= 1, 15)
        assert gate["keep_every"] >= 2  # the gate went up under load
        time.sleep(1.5)  # the load holds a while (a step engaged meanwhile measures its saving)
        cost["ms"] = 1.0  # the load goes
        _wait(lambda: ladder.level == 0, 15)
    finally:
        pipe.stop()
        pipe.join()
    steps = [(e.data["direction"], e.data["step"], e.data["p95_ms"]) for e in events if e.kind == "degrade.step"]
    downs = [s for d, s, _ in steps if d == "down"]
    ups = [s for d, s, _ in steps if d == "up"]
    assert downs[0] == "gate" and ups == list(reversed(downs)), steps
    assert all(p95 > 60 for d, _, p95 in steps if d == "down"), steps
    assert gate["keep_every"] == 1 and ladder.level == 0
