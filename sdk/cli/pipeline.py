"""``ember pipeline run``: a generic classification pipeline on any source, with live statistics."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from sdk.errors import ConfigError
from sdk.vocab import BACKENDS


def register(sub: Any) -> None:
    p = sub.add_parser("pipeline", help="run a streaming pipeline (source -> model -> sinks) with live stats",
                       description="Streaming pipelines: one thread per stage, bounded queues, live statistics.")
    psub = p.add_subparsers(dest="pipeline_command", metavar="SUBCOMMAND", title="subcommands")
    r = psub.add_parser(
        "run", help="classify every item of a source with a model",
        description="Run source -> preprocess -> model -> top-k -> sinks. Image models (input "
        "[1,3,H,W] or [1,H,W,3]) get frames resized to H×W, RGB, 0..1; other models get the samples flattened, padded or "
        "cut to their input size. Prints a statistics line to stderr every --stats-every seconds and the "
        "final statistics as JSON on stdout. Ctrl-C stops cleanly (exit code 130).",
        epilog="Example: ember pipeline run --source file://clip.mp4 --model model.onnx --labels labels.txt "
        "--jsonl out.jsonl --video-out annotated.mp4")
    r.add_argument("--source", required=True, metavar="URI",
                   help="source URI, e.g. file://clip.mp4, v4l2:///dev/video0, synthetic://video?frames=300")
    r.add_argument("--model", required=True, metavar="FILE",
                   help="classification model: .onnx (onnxruntime, tinygrad) or .tflite (litert)")
    r.add_argument("--backend", choices=BACKENDS, default="onnxruntime",
                   help="runtime backend for the model (default onnxruntime)")
    r.add_argument("--labels", metavar="FILE|a,b,c", help="class names: a file with one a line, or a comma list")
    r.add_argument("--top-k", type=int, default=1, metavar="K", help="keep the K best classes (default 1)")
    r.add_argument("--threads", type=int, metavar="N", help="inference threads (config models.threads)")
    r.add_argument("--policy", choices=["auto", "block", "drop_oldest"],
                   help="queue policy; auto = drop_oldest for live sources, block for files (config pipeline.policy)")
    r.add_argument("--queue-size", type=int, metavar="N", help="items per queue (config pipeline.queue_size)")
    r.add_argument("--on-error", choices=["stop", "skip"], default="stop",
                   help="on a stage error: stop with an error (default) or skip the item and count it")
    r.add_argument("--jsonl", metavar="PATH|-", help="write one JSON line per item to PATH (- for stdout)")
    r.add_argument("--video-out", metavar="PATH", help="write the frames with the results drawn on them (.mp4)")
    r.add_argument("--display", action="store_true", help="show the frames in a window (needs a screen)")
    r.add_argument("--stats-every", type=float, default=5.0, metavar="S",
                   help="print a statistics line every S seconds (0: never; default 5)")
    r.add_argument("--max-items", type=int, metavar="N", help="stop after N items have reached the sinks")
    r.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    r.set_defaults(func=_run)
    p.set_defaults(func=lambda args, config: (p.print_help(), 0)[1])


def build_sinks(args: argparse.Namespace) -> list[Any]:
    from sdk.pipeline import CallbackSink, DisplaySink, JsonlSink, StopPipeline, VideoSink

    sinks: list[Any] = []
    if args.jsonl:
        sinks.append(JsonlSink(sys.stdout if args.jsonl == "-" else args.jsonl, flush=args.jsonl == "-"))
    if args.video_out:
        sinks.append(VideoSink(args.video_out))
    if args.display:
        sinks.append(DisplaySink(title=f"ember: {args.source}"))
    if args.max_items is not None:
        if args.max_items < 1:
            raise ConfigError(f"--max-items must be >= 1, got {args.max_items}")
        seen = [0]

        def limit(packet: Any) -> None:
            seen[0] += 1
            if seen[0] >= args.max_items:
                raise StopPipeline(f"--max-items {args.max_items} reached")

        sinks.append(CallbackSink(limit, name="max-items"))
    return sinks


def _run(args: argparse.Namespace, config: Any) -> int:
    from sdk.pipeline import Pipeline
    from sdk.pipeline.classify import classification_stages, read_labels

    threads = args.threads or int(config.get_path("models.threads", 1))
    stages = classification_stages(args.model, read_labels(args.labels), threads=threads, top_k=args.top_k,
                                   backend=args.backend)
    pipe = Pipeline(args.source, stages, build_sinks(args),
                    policy=args.policy or str(config.get_path("pipeline.policy", "auto")),
                    queue_size=args.queue_size or int(config.get_path("pipeline.queue_size", 8)),
                    on_error=args.on_error, name="ember-pipeline")
    if args.duration:
        timer = threading.Timer(args.duration, pipe.stop)
        timer.daemon = True
        timer.start()
    every = args.stats_every if args.stats_every > 0 else float("inf")
    stats = pipe.run(on_stats=lambda st: print(st.summary(), file=sys.stderr, flush=True), stats_every=every)
    report = sys.stderr if args.jsonl == "-" else sys.stdout
    print(json.dumps(stats.as_dict(), indent=2), file=report, flush=True)
    return 130 if stats.stop_reason == "interrupt" else 0
