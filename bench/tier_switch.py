"""Tier switching inside a live pipeline: a 30 fps clip (paced in real time) runs through
preprocess → ModelManager → postprocess while a scripted battery drain and a CPU-load spike force
fp32 → int8 → fp32 → int8 → fp32. Counts frames in/out, frames lost or duplicated around switches,
and the time of the first frame on each new variant (target: under one frame period).

    .venv/bin/python bench/tier_switch.py [--seconds 24] [--fps 30]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cv2
import numpy as np
from _util import write_result

from sdk.device import ScriptedDevice, drain, windows
from sdk.events import EventBus
from sdk.models.builtin import tiny_convnet, tiny_convnet_macs
from sdk.models.manager import ModelManager
from sdk.models.variants import make_model_folder
from sdk.pipeline import CallbackSink, Pipeline, Stage

HW, CHANNELS = (128, 128), (16, 32, 64)


def make_clip(path: Path, seconds: float, fps: int) -> Path:
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (160, 120))
    rng = np.random.default_rng(0)
    for i in range(int(seconds * fps)):
        frame = rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)
        cv2.putText(frame, str(i), (10, 60), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 2)
        out.write(frame)
    out.release()
    return path


def preprocess(frame: np.ndarray) -> np.ndarray:
    rgb = cv2.cvtColor(cv2.resize(frame, HW[::-1], interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=24.0)
    ap.add_argument("--fps", type=int, default=30)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ember-tier-switch-"))
    src = tiny_convnet(tmp / "src.onnx", input_hw=HW, channels=CHANNELS)
    make_model_folder(tmp / "model", src, "bench", tiers=("fp32", "int8"))
    clip = make_clip(tmp / "clip.avi", args.seconds, args.fps)

    s = args.seconds / 24.0  # the script is laid out for 24 s and scales with --seconds
    device = ScriptedDevice(time.monotonic, battery_percent=drain(36, 1.0 / s), charging=windows(False, (11 * s, 1e9, True)),
                            cpu_percent=windows(20.0, (15 * s, 19 * s, 97.0)))
    bus, events = EventBus(), []
    bus.subscribe(lambda e: events.append(e) if e.kind.startswith("tier.") else None)
    period_ms = 1000.0 / args.fps
    manager = ModelManager(tmp / "model", budget_ms=period_ms, device=device, bus=bus, backends=["onnxruntime"],
                           rules=["battery < 30 and not charging -> max_tier int8", "cpu > 90 for 1s -> step_down"],
                           min_dwell_s=2.0, up_after_s=2.0, measure="all")
    profiles = {p.label: {"p50_ms": p.p50, "p95_ms": p.p95} for p in manager.policy.ordered()}
    seqs: collections.Counter[int] = collections.Counter()
    pipe = Pipeline(f"file://{clip}?realtime=true", stages=[
        Stage("preprocess", preprocess), Stage("infer", manager),
        Stage("postprocess", lambda out: int(np.argmax(out[0])))],
        sinks=[CallbackSink(lambda pkt: seqs.update([pkt.item.seq]))], bus=bus)
    stats = pipe.run()
    manager.close()

    switches = [e.data for e in events if e.kind == "tier.switch" and e.data["reason"] != "initial"]
    n = int(args.seconds * args.fps)
    missing = [i for i in range(n) if i not in seqs]
    duplicated = [i for i, c in seqs.items() if c > 1]
    write_result("tier_switch", {
        "model": {"input_hw": HW, "channels": CHANNELS, "macs": tiny_convnet_macs(HW, CHANNELS),
                  "variants": profiles},
        "frames_in": stats.items_in, "frames_out": stats.items_out,
        # a file source blocks instead of dropping, so any missing frame is charged to the switches
        "dropped_by_switch": len(missing), "duplicated": len(duplicated),
        "frame_period_ms": round(period_ms, 3),
        "max_switch_ms": max((sw["switch_ms"] for sw in switches), default=0.0),
        "max_load_ms": max((sw["load_ms"] for sw in switches), default=0.0),
        "switches": len(switches),
        "switch_log": [{k: sw[k] for k in ("from", "to", "reason", "load_ms", "switch_ms")} for sw in switches],
        "quarantined": [e.data for e in events if e.kind == "tier.quarantine"],
        "pipeline": {"fps_overall": round(stats.fps_overall, 2), "latency_p95_ms": stats.latency_p95_ms,
                     "dropped": stats.dropped, "errors": stats.errors},
    })


if __name__ == "__main__":
    main()
