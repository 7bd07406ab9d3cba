"""Ember pipeline vs a bare ``session.run`` loop: same clip, same preprocessing, same ONNX session.

Both loops decode the same video file through the file source and run the same ``ImagePreprocess``
and the same model with the same ONNX Runtime settings (1 intra-op thread): the bare loop calls
``session.run`` on a plain session in one thread; the pipeline runs source / preprocess / infer
(the Ember onnxruntime backend) / sinks in their own threads (policy ``block``: every frame).
Rounds alternate the order; medians are reported. Target: ratio >= 0.97. Then 3 more rounds pinned
to one CPU (``one_core``), where no overlap is possible: what is left is the pipeline's own cost.

    .venv/bin/python bench/pipeline_overhead.py [--frames 1000] [--rounds 5] [--no-one-core]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from _util import write_result
from tqdm import tqdm

from sdk.models.builtin import tiny_convnet, tiny_convnet_macs
from sdk.pipeline import Pipeline, Stage
from sdk.pipeline.classify import ImagePreprocess, ModelInfer
from sdk.sources.registry import open_source

INPUT_HW = (128, 128)
CHANNELS = (24, 48, 96)
FRAME_WH = (320, 240)


def make_clip(path: Path, frames: int) -> Path:
    """A moving-gradient clip written with cv2.VideoWriter (mp4v)."""
    import cv2

    w, h = FRAME_WH
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    xs = np.arange(w, dtype=np.uint16)[None, :]
    ys = np.arange(h, dtype=np.uint16)[:, None]
    for i in range(frames):
        frame = np.empty((h, w, 3), np.uint8)
        frame[..., 0] = (xs + 3 * i) % 256
        frame[..., 1] = (ys + 2 * i) % 256
        frame[..., 2] = (xs + ys + i) % 256
        writer.write(frame)
    writer.release()
    return path


def bare_session(model: Path, threads: int) -> Any:
    """A plain ONNX Runtime session with the same settings the Ember backend uses."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])


def bare_loop(uri: str, pre: ImagePreprocess, session: Any) -> tuple[int, float]:
    """Read a frame, preprocess, session.run: all in this thread."""
    name = session.get_inputs()[0].name
    t0 = time.perf_counter()
    n = 0
    with open_source(uri) as src:
        for item in src:
            session.run(None, {name: pre(item.data)})
            n += 1
    return n, time.perf_counter() - t0


def ember_pipeline(uri: str, pre: ImagePreprocess, infer: ModelInfer) -> tuple[int, float, dict]:
    t0 = time.perf_counter()
    pipe = Pipeline(open_source(uri), [Stage("preprocess", pre), Stage("infer", infer)], policy="block")
    st = pipe.run()
    return st.items_out, time.perf_counter() - t0, st.as_dict()


def noop_rate(frames: int) -> float:
    """Items per second through a 3-stage pipeline of no-op stages (pure runtime overhead)."""
    from sdk.sources.base import BaseSource

    class Same(BaseSource):
        def _open(self) -> None:
            pass

        def _items(self):  # type: ignore[no-untyped-def]
            frame = np.zeros((8, 8, 3), np.uint8)
            for _ in range(frames):
                yield frame, None, None

    st = Pipeline(Same("memory://noop"), [Stage(n, lambda x: x) for n in ("a", "b", "c")]).run()
    return st.items_out / st.elapsed_s


def model_latency_ms(session: Any, x: np.ndarray, n: int = 100) -> float:
    for _ in range(10):
        session.run(None, {"input": x})
    t0 = time.perf_counter()
    for _ in range(n):
        session.run(None, {"input": x})
    return (time.perf_counter() - t0) / n * 1000


def alternate(uri: str, pre: ImagePreprocess, session: Any, infer: ModelInfer, rounds: int, frames: int,
              desc: str) -> tuple[list[float], list[float], dict]:
    """fps of the bare loop and of the pipeline, ``rounds`` times each, alternating which goes first."""
    bare, ember, last_stats = [], [], {}
    for r in tqdm(range(rounds), desc=desc, file=sys.stderr):
        for which in (("bare", "ember") if r % 2 == 0 else ("ember", "bare")):
            if which == "bare":
                n, secs = bare_loop(uri, pre, session)
                bare.append(n / secs)
            else:
                n, secs, last_stats = ember_pipeline(uri, pre, infer)
                ember.append(n / secs)
            if n != frames:
                raise SystemExit(f"{which} processed {n} frames, expected {frames}")
    return bare, ember, last_stats


def summary(bare: list[float], ember: list[float]) -> dict[str, Any]:
    b, e = statistics.median(bare), statistics.median(ember)
    return {"bare_fps": round(b, 1), "ember_fps": round(e, 1), "ratio": round(e / b, 3),
            "bare_fps_rounds": [round(v, 1) for v in bare], "ember_fps_rounds": [round(v, 1) for v in ember]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    ap.add_argument("--no-one-core", action="store_true", help="skip the rounds pinned to one CPU")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", args.frames)
        model = tiny_convnet(Path(tmp) / "model.onnx", input_hw=INPUT_HW, channels=CHANNELS)
        uri = f"file://{clip}"
        pre = ImagePreprocess(INPUT_HW)
        session, infer = bare_session(model, args.threads), ModelInfer(model, threads=args.threads)
        latency = model_latency_ms(session, np.random.default_rng(0).random((1, 3, *INPUT_HW), np.float32))
        bare_loop(uri, pre, session)  # warm-up: file cache, decoder, session
        load_before = os.getloadavg()[0]
        bare, ember, last_stats = alternate(uri, pre, session, infer, args.rounds, args.frames, "all CPUs")
        one_core = None
        if not args.no_one_core and hasattr(os, "sched_setaffinity"):
            # no overlap possible: what is left is the pipeline's own cost (threads, queues, GIL)
            cpus = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {min(cpus)})  # this thread; the pipeline's threads inherit it
            try:
                one_core = summary(*alternate(uri, pre, session, infer, 3, args.frames, "one CPU")[:2])
            finally:
                os.sched_setaffinity(0, cpus)
        noop = noop_rate(20000)

    write_result("pipeline_overhead", {
        **summary(bare, ember), "target_ratio": 0.97,
        "frames": args.frames, "rounds": args.rounds, "threads": args.threads,
        "one_core": one_core,
        "model": {"input_hw": list(INPUT_HW), "channels": list(CHANNELS),
                  "macs": tiny_convnet_macs(INPUT_HW, CHANNELS), "latency_ms": round(latency, 3)},
        "frame_wh": list(FRAME_WH),
        "ember_stage_p50_ms": {k: round(v["p50_ms"], 3) for k, v in last_stats["stages"].items()},
        "noop_pipeline_items_per_s": round(noop, 0),
        "loadavg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "command": "python bench/pipeline_overhead.py",
    })


if __name__ == "__main__":
    main()
