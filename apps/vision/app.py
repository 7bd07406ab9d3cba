"""``ember run vision`` / ``ember eval vision`` / ``ember demo``: the vision app's CLI side."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sdk.errors import EmberError

MODEL_DIR = Path(__file__).resolve().parent / "model"


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--roi", action="append", default=[], metavar="x,y,w,h|x1,y1,x2,y2,x3,y3,...",
                   help="region of interest (rectangle or polygon, pixels); objects entering/leaving it are "
                   "events; repeat for several")
    p.add_argument("--line", action="append", default=[], metavar="x1,y1,x2,y2",
                   help="counting line; crossings are counted per class and direction; repeat for several")
    p.add_argument("--video-out", metavar="FILE", help="write the annotated video (.mp4 or .avi)")
    p.add_argument("--display", action="store_true", help="show the annotated frames in a window")
    p.add_argument("--threshold", type=float, metavar="T", help="score threshold (default: the model's)")
    p.add_argument("--no-track", action="store_true", help="detections only (e.g. for unrelated photos)")
    p.add_argument("--anchor", choices=["bottom", "center"], default="bottom",
                   help="point of a box tested against regions and lines (default: bottom centre)")
    p.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--telemetry", metavar="SPOOL", help="record telemetry (drift, class frequencies, "
                   "confidences) to this spool file; with [telemetry] broker set in the config it is also sent")


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")


def _sinks(args: argparse.Namespace, scene: Any, config: Any, detector: Any) -> list[Any]:
    from sdk.pipeline import CallbackSink, DisplaySink, JsonlSink, VideoSink

    sinks: list[Any] = []
    if args.jsonl:
        sinks.append(JsonlSink(sys.stdout if args.jsonl == "-" else args.jsonl, flush=args.jsonl == "-"))
    if args.video_out:
        sinks.append(VideoSink(args.video_out, draw=scene.draw))
    if args.display:
        sinks.append(DisplaySink(title="ember vision", draw=scene.draw))
    if args.telemetry or (config is not None and config.get_path("telemetry.broker")):
        from sdk.telemetry import ReferenceProfile, Telemetry, TelemetrySink

        ref = detector.manager.store.manifest.reference_profile
        profile = ReferenceProfile.from_dict(ref) if ref else None
        extra = {"spool": args.telemetry} if args.telemetry else {}
        tel = Telemetry.from_config(config, kind="image", profile=profile, labels=detector.labels, **extra)
        sinks.append(TelemetrySink(tel))
    sinks.append(CallbackSink(_FrameCount(args.max_frames), name="frames"))
    return sinks


class _FrameCount:
    """The last sink: counts the frames every other sink has seen; ends the run after ``limit``."""

    def __init__(self, limit: int | None) -> None:
        self.limit, self.seen = limit, 0

    def __call__(self, _packet: Any) -> None:
        from sdk.pipeline import StopPipeline

        self.seen += 1
        if self.limit and self.seen >= self.limit:
            raise StopPipeline(f"--max-frames {self.limit} reached")


def make_scene(detector: Any, roi: list[str], lines: list[str], track: bool = True, anchor: str = "bottom",
               threshold: float | None = None) -> Any:
    from apps.vision.live import Scene
    from sdk.detect import Line, Region, Tracker, Zones

    zones = Zones([Region.parse(s, f"roi{i + 1}") for i, s in enumerate(roi)],
                  [Line.parse(s, f"line{i + 1}") for i, s in enumerate(lines)], anchor)
    thr = detector.postprocess.score_threshold if threshold is None else threshold
    return Scene(detector, Tracker(high=thr, low=min(0.15, thr)) if track else None, zones, thr)


def run(args: argparse.Namespace, config: Any) -> int:
    from apps.vision.live import stages
    from sdk.detect import Detector
    from sdk.pipeline import Pipeline
    from sdk.util.jsonutil import dumps

    source = args.source
    if not source:
        import tempfile

        from apps.vision.demo import sample_clip

        source = "file://" + sample_clip(Path(tempfile.mkdtemp(prefix="ember-vision-")) / "sample.mp4")
        print(f"no --source: running on the bundled sample clip {source[7:]} "
              "(give e.g. --source v4l2:///dev/video0 or file://clip.mp4)", file=sys.stderr)
    detector = Detector.from_folder(args.model or MODEL_DIR, tier=args.tier, backend=args.backend,
                                    threads=args.threads, config=config)
    scene = make_scene(detector, args.roi, args.line, not args.no_track, args.anchor, args.threshold)
    pipe = Pipeline(source, stages(detector, scene), _sinks(args, scene, config, detector), name="vision")
    try:
        stats = pipe.run()
    finally:
        detector.close()
    report = sys.stderr if args.jsonl == "-" else sys.stdout
    frames = pipe.sinks[-1].fn.seen
    print(dumps({**scene.summary(), "frames": frames, "fps": stats.as_dict().get("fps"),
                 "stop_reason": stats.stop_reason},
                indent=2), file=report, flush=True)
    return 130 if stats.stop_reason == "interrupt" else 0


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from apps.vision.data import CLASSES, load_folder
    from apps.vision.evaluate import evaluate_detector
    from sdk.detect import Detector

    if not (Path(args.data) / "annotations.json").is_file():
        raise EmberError(f"{args.data}: no annotations.json; 'ember eval vision' needs a folder laid out like "
                         "detection/val (COCO-style annotations.json with labeled_classes, and images/)")
    samples = load_folder(args.data)
    with Detector.from_folder(args.model or MODEL_DIR, tier=args.tier or "fp32", backend=args.backend,
                              threads=args.threads) as det:
        classes = tuple(det.labels) if not set(CLASSES) <= set(det.labels) else CLASSES
        res = evaluate_detector(det, samples, classes, plot=args.plot, progress=True)
        res["model"] = det.manager.store.name
        res["tier"], res["backend"] = det.manager.current
    return res


