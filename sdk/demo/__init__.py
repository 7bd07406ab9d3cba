"""``ember demo``: the SDK end to end on inputs it makes itself.

A generated clip (a ball moving over a panning public-domain photo; the light fades half-way) runs
through a pipeline whose infer stage is the tier-switching ``ModelManager`` on the shipped
``quadrant.onnx`` (fp32 and an int8 tier made on the spot). A scripted battery drains and a
charger is plugged in later, so the manager switches tiers; telemetry computes drift against the
reference profile of the daylight frames and spools everything to a local file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdk.demo.scene import PERIOD, QUADRANTS, Scene, preprocess, write_clip
from sdk.events import Event, EventBus

MODEL = Path(__file__).with_name("quadrant.onnx")
FPS = 30.0


@dataclass
class DemoResult:
    frames: int
    accuracy: float | None
    accuracy_by_tier: dict[str, float]
    stats: dict[str, Any]
    events: list[dict[str, Any]]
    spool_counts: dict[str, int]
    files: dict[str, str]
    manager: dict[str, Any] = field(default_factory=dict)
    source: str = ""


def _model_folder(folder: Path, scene: Scene, progress: Callable[[str], None]) -> Path:
    from sdk.models.variants import make_model_folder

    progress("making the model's tiers (fp32, int8 calibrated on 100 daylight frames)")
    calib = [preprocess(scene.frame(i).image) for i in range(0, 300, 3)]
    make_model_folder(folder, MODEL, "demo-quadrant", tiers=("fp32", "int8"), calibration=calib,
                      labels=QUADRANTS)
    return folder


def _profile(folder: Path, uri: str, frames: int, progress: Callable[[str], None]) -> Any:
    from sdk.sources import open_source
    from sdk.telemetry import build_reference_profile, embed_in_manifest

    progress(f"building the drift reference profile from the first {frames} frames (daylight)")
    with open_source(uri) as src:
        images = [item.data for item, _ in zip(src, range(frames))]
    profile = build_reference_profile(images, "image", labels=list(QUADRANTS))
    embed_in_manifest(profile, folder / "manifest.json")
    return profile


def _inputs(out: Path, data: str | None, frames: int) -> tuple[str, list[int] | None]:
    if data:
        p = Path(data)
        uri = f"file://{p}/" if p.is_dir() else (data if "://" in data else f"file://{p}")
        return uri, None
    clip = out / "clip.mp4"
    return f"file://{clip}", write_clip(clip, frames, dusk_from=frames // 2, fps=FPS)


def run_demo(out: str | Path = "demo-out", data: str | None = None, frames: int = 1200,
             config: Any = None, progress: Callable[[str], None] = print) -> DemoResult:
    """Run the demo, writing its files under ``out``; ``data`` swaps the clip for real images/video."""
    from sdk.models.manager import ModelManager
    from sdk.pipeline import CallbackSink, JsonlSink, Pipeline, Stage, VideoSink
    from sdk.telemetry import Telemetry, TelemetrySink, read_messages
    from sdk.testing import FakeClock, ScriptedDevice, drain, windows

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spool = out / "telemetry.spool"
    for stale in out.glob("telemetry.spool*"):
        stale.unlink()
    progress("generating the input clip" if not data else f"using real data from {data}")
    uri, truth = _inputs(out, data, frames)
    scene = Scene()
    folder = _model_folder(out / "model", scene, progress)
    profile = _profile(folder, uri, PERIOD, progress)

    bus, events = EventBus(), []
    bus.subscribe(events.append)
    clock = FakeClock()
    seconds = frames / FPS
    device = ScriptedDevice(clock, battery_percent=drain(40.0, 20.0 / seconds), temperature_c=48.0,
                            charging=windows(False, (0.7 * seconds, 1e9, True)), cpu_percent=35.0)
    manager = ModelManager(folder, budget_ms=1000.0 / FPS, device=device, clock=clock, bus=bus,
                           rules=["battery < 30 and not charging -> max_tier int8"], min_dwell_s=2.0)
    tel = Telemetry.from_config(config, kind="image", profile=profile, labels=list(QUADRANTS), bus=bus,
                                spool=str(spool), broker="", device_id="demo", fleet="demo",
                                window_block=PERIOD // 6, window_blocks=6, drift_interval_s=0.0, interval_s=0.1,
                                device_state=lambda: device.snapshot().as_dict())
    tel.register_handler("pin_tier", lambda tier, backend=None: manager.pin(tier, backend))

    def infer(x: np.ndarray) -> dict[str, Any]:
        clock.advance(1.0 / FPS)  # simulated time: one frame period per frame
        probs = manager(x)[0][0]
        return {"probs": probs, "tier": manager.tier}

    def post(r: dict[str, Any]) -> dict[str, Any]:
        k = int(np.argmax(r["probs"]))
        return {"label": QUADRANTS[k], "class_id": k, "score": float(r["probs"][k]),
                "scores": r["probs"].tolist(), "tier": r["tier"]}

    results: list[tuple[int, dict[str, Any]]] = []
    pipe = Pipeline(uri, stages=[Stage("preprocess", preprocess), Stage("infer", infer),
                                 Stage("postprocess", post)],
                    sinks=[JsonlSink(out / "results.jsonl"), VideoSink(out / "annotated.mp4"),
                           CallbackSink(lambda p: results.append((p.item.seq, p.value))),
                           TelemetrySink(tel, stats=lambda: pipe.stats())],
                    policy="block", bus=bus)
    progress(f"running the pipeline over {uri}")
    try:
        stats = pipe.run()
    finally:
        manager.close()
    result = _result(frames, truth, results, stats, events, read_messages(spool), out, folder, manager)
    result.source = (f"{uri} (generated: a ball over a panning photo, {frames} frames at {FPS:.0f} fps, "
                     f"light fading from frame {frames // 2})") if truth is not None else uri
    try:
        from sdk.fleet.report import write_report

        result.files["report"] = str(write_report(spool, out / "report.html"))
    except ImportError as e:  # matplotlib is in the 'fleet' extra
        progress(f"no HTML report ({e.name} is not installed)")
    return result


def _result(frames: int, truth: list[int] | None, results: list[tuple[int, dict[str, Any]]], stats: Any,
            events: list[Event], spooled: list[dict[str, Any]], out: Path, folder: Path, manager: Any) -> DemoResult:
    acc, by_tier = None, {}
    if truth is not None:
        hits = [(v["tier"], v["class_id"] == truth[seq]) for seq, v in results if seq < len(truth)]
        acc = float(np.mean([h for _, h in hits])) if hits else None
        for tier in {t for t, _ in hits}:
            by_tier[tier] = float(np.mean([h for t, h in hits if t == tier]))
    counts: dict[str, int] = {}
    for m in spooled:
        counts[m["kind"]] = counts.get(m["kind"], 0) + 1
    files = {"clip": str(out / "clip.mp4"), "results": str(out / "results.jsonl"),
             "annotated": str(out / "annotated.mp4"), "model": str(folder), "spool": str(out / "telemetry.spool")}
    return DemoResult(len(results), acc, by_tier, stats.as_dict(), [e.as_dict() for e in events], counts, files,
                      manager.stats())


def describe(r: DemoResult) -> str:
    """The demo's printed report."""
    s = r.stats
    lines = [f"input: {r.source}",
             (f"pipeline: {s['items_out']} frames in {s['elapsed_s']:.1f} s ({s['fps_overall']:.0f} fps), "
              f"end-to-end latency p50 {s['latency_p50_ms']:.1f} ms / p95 {s['latency_p95_ms']:.1f} ms, "
              f"dropped {sum(s['dropped'].values())}")]
    if r.accuracy is not None:
        per = ", ".join(f"{t} {a:.1%}" for t, a in sorted(r.accuracy_by_tier.items()))
        lines.append(f"found: the ball's quadrant, right on {r.accuracy:.1%} of frames ({per})")
    switches = [e["data"] for e in r.events if e["kind"] == "tier.switch" and e["data"].get("from")]
    lines.append(f"tier switches under a scripted battery drain (40% → 20%, charger plugged in at 70% of "
                 f"the clip): {len(switches)}; ladder on this device: {', '.join(r.manager.get('ladder', []))}")
    for d in switches:
        lines.append(f"  {d.get('from')} → {d.get('to')}: {d.get('reason')} "
                     f"(background load {d.get('load_ms', 0):.0f} ms, switch {d.get('switch_ms', 0):.2f} ms)")
    drift = [e["data"] for e in r.events if e["kind"] == "drift.state"]
    for d in drift:
        lines.append(f"drift: {d.get('feature')} {d.get('previous')} → {d.get('state')} (PSI {d.get('psi', 0):.2f} "
                     f"over the last {d.get('frames')} frames)")
    if not drift:
        lines.append("drift: no drift state change")
    total = sum(r.spool_counts.values())
    lines.append(f"telemetry spooled (no broker configured): {total} messages {r.spool_counts} in {r.files['spool']}")
    if "report" in r.files:
        lines.append(f"  plots of it: {r.files['report']} (ember fleet report --spool {r.files['spool']} --out FILE)")
    lines.append("files: " + ", ".join(f"{k}={v}" for k, v in r.files.items()))
    return "\n".join(lines)
