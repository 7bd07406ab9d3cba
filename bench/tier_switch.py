"""Tier switching inside a live pipeline, driven by two real causes, compared with the same run
pinned to one tier.

A simulated camera delivers a clip at 20 fps on its own clock (frame i is captured at t0 + i/20 s
whatever the consumer does; a reader that is late gets the newest frame and the older ones are
dropped, as a camera driver does) into preprocess → ModelManager(fp32, int8) → postprocess, with
the pipeline's live policy (``drop_oldest`` queues). The whole bench is pinned to ONE CPU, so the
load spike (busy-loop processes on that CPU, which stop by themselves) slows inference by a
predictable factor (3 burners: about 4x): (1) the spike pushes fp32's p95 over the budget a user
would set for a 20 fps camera (the frame period, 50 ms: keep up with the camera) and the p95 rule steps down to int8, then back up once there
is headroom; (2) a scripted battery drain caps the tier at int8 until the charger is plugged in.

Each round runs the same script twice, interleaved: ``switching`` (the manager's rules) and
``pinned_fp32`` (``manager.pin("fp32")``: no switches). Drops are counted by frame index: at the
camera (reader late), in the pipeline's queues, and those inside a switch window (from the start
of the new variant's load to one frame period after the swap) in both runs.

    .venv/bin/python bench/tier_switch.py [--fps 20] [--burners 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cv2
import numpy as np
from _util import load, write_result
from tqdm import tqdm

from sdk.events import EventBus
from sdk.models.builtin import tiny_convnet, tiny_convnet_macs
from sdk.models.manager import ModelManager
from sdk.models.store import ModelStore
from sdk.models.variants import make_model_folder
from sdk.pipeline import CallbackSink, Pipeline, Stage
from sdk.sources.base import BaseSource
from sdk.testing import ScriptedDevice, drain, windows
from sdk.util.timing import interleave, percentile, percentiles

# 467 M MACs: wide enough that int8 QDQ runs 2-4x faster than fp32 on 1 ORT thread here.
HW, CHANNELS = (128, 128), (32, 128, 256)
ORT = {"onnxruntime": {"threads": 1}}
# The script (seconds from the pipeline's start): load spike, battery drain, charger.
SPIKE = (2.0, 10.0)
BATTERY_START, BATTERY_PER_S, CHARGER_AT, CLIP_S = 48.0, 1.0, 25.0, 36.0
RULES = ["battery < 30 and not charging -> max_tier int8"]  # plus the default p95/headroom rules
DWELL_S, DOWN_AFTER_S, UP_AFTER_S = 3.0, 3.0, 5.0
BURN = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def make_frames(seconds: float, fps: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    frames = []
    for i in range(int(seconds * fps)):
        frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        cv2.putText(frame, str(i), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
        frames.append(frame)
    return frames


class Camera(BaseSource):
    """A live source on its own clock: frame ``i`` is captured at ``t0 + i / fps``. A reader that
    comes back late gets the newest frame; the ones it missed are dropped (``stats.dropped``,
    ``missed``), like a camera driver with a one-frame buffer."""

    kind = "camera"

    def __init__(self, frames: list[np.ndarray], fps: float) -> None:
        super().__init__("sim://camera", live=True, fps=fps, frames=len(frames))
        self.frames, self.fps = frames, fps
        self.missed: list[int] = []
        self.t0 = 0.0

    def _open(self) -> None:
        pass

    def _items(self):  # type: ignore[no-untyped-def]
        self.t0, i, n = time.monotonic(), 0, len(self.frames)
        while i < n:
            now = time.monotonic()
            due = self.t0 + i / self.fps
            if now < due:
                if self._closed.wait(due - now):
                    return
            else:
                newest = min(n - 1, int((now - self.t0) * self.fps))
                self.missed.extend(range(i, newest))
                self.stats.dropped += newest - i
                i = newest
            yield self.frames[i], self.t0 + i / self.fps, {"frame": i}
            i += 1


def preprocess(frame: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(cv2.resize(frame, HW[::-1], interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0


def profile_paced(store: ModelStore, fps: int, frames: int = 150) -> dict[str, dict[str, float]]:
    """Time every variant at the pipeline's cadence (all variants once per frame period, interleaved so
    they see the same background load; caches as cold as in the pipeline) and put the p50/p95 into
    the manifest's metrics, which the manager then trusts (``measure="never"``)."""
    x, period = store.example_input(), 1.0 / fps
    loaded = [store.load(v, **ORT[v.backend]) for v in store.usable()]
    times: dict[str, list[float]] = {f"{lv.key[0]}/{lv.key[1]}": [] for lv in loaded}
    nxt = time.monotonic()
    for _ in range(frames):
        for lv, ts in zip(loaded, times.values(), strict=True):
            t0 = time.perf_counter()
            lv.run(x)
            ts.append((time.perf_counter() - t0) * 1e3)
        nxt += period
        time.sleep(max(0.0, nxt - time.monotonic()))
    out = {}
    for lv, (label, ts) in zip(loaded, times.items(), strict=True):
        lv.close()
        p50, p95 = (round(v, 3) for v in percentiles(ts, 50, 95))
        store.manifest.set_metrics(*lv.key, store.device_class, {"latency_ms_p50": p50, "latency_ms_p95": p95,
                                                                 "threads": 1})
        out[label] = {"p50_ms": p50, "p95_ms": p95}
    return out


def load_spike(n: int, start_in: float, seconds: float) -> tuple[threading.Timer, list[subprocess.Popen]]:
    """Start ``n`` busy-loop processes ``start_in`` s from now; each exits by itself after ``seconds``."""
    procs: list[subprocess.Popen] = []
    timer = threading.Timer(start_in, lambda: procs.extend(
        subprocess.Popen([sys.executable, "-c", BURN, str(seconds)]) for _ in range(n)))
    timer.daemon = True
    timer.start()
    return timer, procs


def cause(reason: str, previous: str | None) -> str:
    """The switch's cause, from the policy's reason (and, for a step up, the switch before it)."""
    if reason.startswith("step_down: p95"):
        return "p95 rule: p95 > budget (step down)"
    if reason.startswith("step_up: headroom") and previous and previous.startswith("limit: battery"):
        return "battery rule: charger plugged in lifts the int8 cap, then the headroom rule steps up"
    if reason.startswith("step_up: headroom"):
        return "p95 rule: headroom (step up)"
    if reason.startswith("limit: battery"):
        return "battery rule: battery < 30 and not charging (cap int8)"
    if reason.startswith("limit lifted"):
        return "battery rule released: charger plugged in"
    return reason


def latency_phases(log: list[tuple[float, str, float]]) -> dict[str, Any]:
    """Infer-stage latency per (phase, tier): shows that the spike raised the real latency."""
    groups: dict[str, list[float]] = collections.defaultdict(list)
    for t, tier, ms in log:
        groups[f"{'spike' if SPIKE[0] <= t < SPIKE[1] else 'calm'}/{tier}"].append(ms)
    return {k: {"frames": len(v), **dict(zip(("p50_ms", "p95_ms"), (round(x, 2) for x in percentiles(v, 50, 95)),
                                             strict=True))} for k, v in sorted(groups.items())}


def after_switch_p50(log: list[tuple[float, str, float]], t: float, tier: str) -> float | None:
    """Median infer latency on ``tier`` in the second after a switch: what a non-switch frame costs then."""
    xs = [ms for ts, tr, ms in log if t < ts <= t + 1.0 and tr == tier]
    return round(percentile(xs, 50), 2) if xs else None


def flaps(switches: list[dict[str, Any]], dwell_s: float) -> tuple[int, list[float]]:
    """A flap is a switch undone (A→B then B→A) within the dwell time; also returns every such gap."""
    gaps = [round(b["t_s"] - a["t_s"], 2) for a, b in itertools.pairwise(switches)
            if a["from"] == b["to"] and a["to"] == b["from"]]
    return sum(g < dwell_s for g in gaps), gaps


def run_once(store: ModelStore, frames: list[np.ndarray], fps: int, budget_ms: float, burners: int,
             pin: str | None) -> dict[str, Any]:
    """One pass of the script; ``pin``: a tier to pin (no switching), None for the manager's rules."""
    device = ScriptedDevice(time.monotonic, battery_percent=drain(BATTERY_START, BATTERY_PER_S),
                            charging=windows(False, (CHARGER_AT, 1e9, True)),
                            cpu_percent=windows(20.0, (*SPIKE, 97.0)))
    bus, events = EventBus(), []
    bus.subscribe(lambda e: events.append((time.monotonic() - device.start, e)) if e.kind.startswith("tier.") else None)
    manager = ModelManager(store, budget_ms=budget_ms, device=device, bus=bus, rules=RULES, measure="never",
                           backend_options=ORT, min_dwell_s=DWELL_S, down_after_s=DOWN_AFTER_S, up_after_s=UP_AFTER_S)
    if pin is not None:
        manager.pin(pin)
    infer_log: list[tuple[float, str, float]] = []

    def infer(x: np.ndarray) -> list[np.ndarray]:
        t0 = time.perf_counter()
        out = manager(x)
        infer_log.append((time.monotonic() - device.start, manager.tier, (time.perf_counter() - t0) * 1e3))
        return out

    got: list[int] = []
    camera = Camera(frames, fps)
    pipe = Pipeline(camera, stages=[
        Stage("preprocess", preprocess), Stage("infer", infer),
        Stage("postprocess", lambda out: int(np.argmax(out[0])))],
        sinks=[CallbackSink(lambda pkt: got.append(pkt.item.meta["frame"]))], bus=bus)
    device.start = time.monotonic()  # the script's t = 0 is the pipeline's start
    timer, procs = load_spike(burners, SPIKE[0], SPIKE[1] - SPIKE[0])
    stats = pipe.run()
    manager.close()
    timer.cancel()
    for p in procs:  # they exit by themselves at the end of the spike; this only reaps them
        p.wait(timeout=30)
    offset = camera.t0 - device.start  # camera clock -> script clock
    switches = switch_log(events, infer_log)
    windows_s = [(sw["t_s"] - sw["load_ms"] / 1e3 - sw["switch_ms"] / 1e3, sw["t_s"] + 1.0 / fps) for sw in switches]
    return summarize(len(frames), fps, offset, got, camera.missed, stats, switches, windows_s, infer_log, budget_ms)


def switch_log(events: list[tuple[float, Any]], infer_log: list[tuple[float, str, float]]) -> list[dict[str, Any]]:
    switches: list[dict[str, Any]] = []
    for t, e in events:
        if e.kind == "tier.switch" and e.data["reason"] not in ("initial", "pinned"):
            previous = switches[-1]["reason"] if switches else None
            switches.append({"t_s": round(t, 2), **{k: e.data[k] for k in ("from", "to", "reason", "load_ms",
                             "switch_ms")}, "cause": cause(e.data["reason"], previous)})
            switches[-1]["next_1s_p50_ms"] = after_switch_p50(infer_log, t, e.data["to_tier"])
    return switches


def summarize(n: int, fps: int, offset: float, got: list[int], missed: list[int], stats: Any,
              switches: list[dict[str, Any]], windows_s: list[tuple[float, float]],
              infer_log: list[tuple[float, str, float]], budget_ms: float) -> dict[str, Any]:
    """Frame accounting by index (capture time = offset + i / fps on the script's clock)."""
    counts = collections.Counter(got)
    lost = [i for i in range(n) if i not in counts]
    at = [offset + i / fps for i in lost]
    spike_infer = [ms for t, _, ms in infer_log if SPIKE[0] <= t < SPIKE[1]]
    return {
        "frames": n, "delivered": len(counts), "dropped": len(lost),
        "dropped_at_camera": len(missed), "dropped_in_queues": sum(stats.dropped.values()),
        "dropped_in_spike": sum(SPIKE[0] <= t < SPIKE[1] for t in at),
        "dropped_in_switch_windows": in_windows(at, [list(w) for w in windows_s]),
        "duplicated": sum(c > 1 for c in counts.values()),
        "out_of_order": sum(b < a for a, b in itertools.pairwise(got)),
        "spike_infer_p95_ms": round(percentile(spike_infer, 95), 2) if spike_infer else None,
        "spike_over_budget": bool(spike_infer) and percentile(spike_infer, 95) > budget_ms,
        "switches": len(switches), "flaps": flaps(switches, DWELL_S)[0], "switch_log": switches,
        "switch_windows_s": [[round(a, 3), round(b, 3)] for a, b in windows_s],
        "dropped_at_s": [round(t, 3) for t in at],
        "infer_latency": latency_phases(infer_log),
        "pipeline": {"fps_overall": round(stats.fps_overall, 2), "latency_p95_ms": round(stats.latency_p95_ms, 2),
                     "errors": stats.errors},
    }


def in_windows(times: list[float], windows_s: list[list[float]]) -> int:
    return sum(any(a <= t <= b for a, b in windows_s) for t in times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fps", type=int, default=20)
    ap.add_argument("--burners", type=int, default=3, help="busy-loop processes on the bench's CPU during the spike")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of (switching, pinned fp32), order alternating")
    ap.add_argument("--cpu", type=int, default=None, help="the CPU to pin the bench to (default: the last one)")
    args = ap.parse_args()
    load_before = load()
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})  # the pipeline's threads and the burner processes inherit it
    tmp = Path(tempfile.mkdtemp(prefix="ember-tier-switch-"))
    src = tiny_convnet(tmp / "src.onnx", input_hw=HW, channels=CHANNELS)
    make_model_folder(tmp / "model", src, "bench", tiers=("fp32", "int8"))
    frames = make_frames(CLIP_S, args.fps)
    store = ModelStore(tmp / "model", backends=["onnxruntime"])
    profiles = profile_paced(store, args.fps)
    budget_ms = round(1000.0 / args.fps, 1)  # what a user sets for a camera: keep up with it
    runs = interleave({"switching": lambda: run_once(store, frames, args.fps, budget_ms, args.burners, None),
                       "pinned_fp32": lambda: run_once(store, frames, args.fps, budget_ms, args.burners, "fp32")},
                      args.rounds, progress=lambda r: tqdm(r, desc="rounds", file=sys.stderr))
    for sw, pin in zip(runs["switching"], runs["pinned_fp32"], strict=True):  # same round, same script times
        sw["pinned_fp32_dropped_in_same_windows"] = in_windows(pin["dropped_at_s"], sw["switch_windows_s"])
    keys = ("dropped", "dropped_in_spike", "dropped_in_switch_windows", "switches", "spike_infer_p95_ms")
    write_result("tier_switch", {
        "model": {"input_hw": HW, "channels": CHANNELS, "macs": tiny_convnet_macs(HW, CHANNELS), "threads": 1,
                  "variants_paced_at_fps": profiles, "ladder": ["fp32/onnxruntime", "int8/onnxruntime"]},
        "cpu": cpu, "budget_ms": budget_ms, "frame_period_ms": round(1000.0 / args.fps, 3),
        "summary": {name: {k: [r[k] for r in rs] for k in keys} for name, rs in runs.items()},
        "switching_dropped_in_switch_windows_vs_pinned": [
            [r["dropped_in_switch_windows"], r["pinned_fp32_dropped_in_same_windows"]] for r in runs["switching"]],
        "script": {"load_spike_s": SPIKE, "burner_processes": args.burners, "scripted_cpu_percent": 97.0,
                   "battery": f"{BATTERY_START}% - {BATTERY_PER_S}%/s (< 30 at {BATTERY_START - 30:.0f} s)",
                   "charger_at_s": CHARGER_AT, "clip_s": CLIP_S, "fps": args.fps, "rules": RULES,
                   "min_dwell_s": DWELL_S, "down_after_s": DOWN_AFTER_S, "up_after_s": UP_AFTER_S},
        "runs": runs,
        "command": "python bench/tier_switch.py",
    }, load_before)


if __name__ == "__main__":
    main()
