"""Ember pipeline vs a bare ``session.run`` loop, on one core and on two, in the same run.

Both loops decode the same video file through the file source and run the same ``ImagePreprocess``
and the same model with the same ONNX Runtime settings (1 intra-op thread): the bare loop calls
``session.run`` on a plain session in one thread; the pipeline (policy ``block``: every frame) runs
source / preprocess / infer (the Ember onnxruntime backend) / sinks in the threads its layout picks
from the CPUs it may use (``sdk.pipeline.layout``: 1 thread on one core, 3 on two).

* ``one_core``: this process pinned to one CPU. No overlap is possible, so the ratio is the
  pipeline's own cost (goal >= 0.97).
* ``two_cores``: pinned to two CPUs: decoding/preprocessing overlap inference (goal >= 1.2).

The four variants (bare/Ember x one/two cores) run once per round, in alternating order, so they
share the machine's load; the ratio is the median of the per-round ratios (with quartiles and
every round), and CPU time per frame (all threads) is given beside it.

    .venv/bin/python bench/pipeline_overhead.py [--frames 300] [--rounds 21]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from _util import load, write_result
from tqdm import tqdm

from sdk.models.builtin import tiny_convnet, tiny_convnet_macs
from sdk.pipeline import Pipeline, Stage
from sdk.pipeline.classify import ImagePreprocess, ModelInfer
from sdk.pipeline.layout import thread_count
from sdk.sources.registry import open_source
from sdk.util.timing import interleave, percentile, time_calls

INPUT_HW = (128, 128)
CHANNELS = (24, 48, 96)
FRAME_WH = (640, 480)  # a USB camera's usual VGA frames (--frame to change)


def make_clip(path: Path, frames: int, wh: tuple[int, int] = FRAME_WH) -> Path:
    """A moving-gradient clip written with cv2.VideoWriter (mp4v)."""
    import cv2

    w, h = wh
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


def noop_rate(frames: int, cpus: set[int]) -> float:
    """Items per second through a 3-stage pipeline of no-op stages (pure runtime overhead)."""
    from sdk.sources.base import BaseSource

    class Same(BaseSource):
        def _open(self) -> None:
            pass

        def _items(self):  # type: ignore[no-untyped-def]
            frame = np.zeros((8, 8, 3), np.uint8)
            for _ in range(frames):
                yield frame, None, None

    def run() -> tuple[int, float]:
        st = Pipeline(Same("memory://noop"), [Stage(n, lambda x: x) for n in ("a", "b", "c")]).run()
        return st.items_out, st.elapsed_s

    n, secs, *_ = pinned(cpus, run)()
    return round(n / secs)


Run = tuple[int, float, float, int]  # frames, wall s, CPU s and voluntary context switches (all threads)


def pinned(cpus: set[int] | None, fn: Callable[[], tuple[int, float]]) -> Callable[[], Run]:
    """``fn`` run with this thread (and the threads it starts) on ``cpus`` (None: all of them),
    with the CPU time it took added."""

    def run() -> Run:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, cpus or before)
        try:
            c0, v0 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw
            n, secs = fn()
            return n, secs, time.process_time() - c0, resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw - v0
        finally:
            os.sched_setaffinity(0, before)

    return run


def summary(bare: list[Run], ember: list[Run], frames: int) -> dict[str, Any]:
    """Per round, Ember's fps over the bare loop's (both ran back to back, under the same load);
    ``ratio`` is the median of these paired ratios. CPU ms per frame counts every thread of the
    process: what the pipeline costs beyond the bare loop shows there even when other processes
    take the CPU away (``cpu_ratio``: bare CPU over Ember CPU, paired per round)."""
    for n, *_ in (*bare, *ember):
        if n != frames:
            raise SystemExit(f"a run processed {n} frames, expected {frames}")
    bf, ef = [frames / r[1] for r in bare], [frames / r[1] for r in ember]
    ratios = [y / x for x, y in zip(bf, ef, strict=True)]
    cpu_ratios = [b[2] / e[2] for b, e in zip(bare, ember, strict=True)]
    bc, ec = (statistics.median(r[2] / frames * 1e3 for r in runs) for runs in (bare, ember))
    bs, es = (statistics.median(r[3] / frames for r in runs) for runs in (bare, ember))
    return {"ratio": round(statistics.median(ratios), 3),
            "ratio_quartiles": [round(percentile(ratios, q), 3) for q in (25, 75)],
            "bare_fps": round(statistics.median(bf), 1), "ember_fps": round(statistics.median(ef), 1),
            "ratio_rounds": [round(r, 3) for r in ratios],
            "cpu_ms_per_frame": {"bare": round(bc, 3), "ember": round(ec, 3)},
            "cpu_ratio": round(statistics.median(cpu_ratios), 3),
            "voluntary_switches_per_frame": {"bare": round(bs, 2), "ember": round(es, 2)},
            "bare_fps_rounds": [round(v, 1) for v in bf], "ember_fps_rounds": [round(v, 1) for v in ef]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=300, help="frames per run (short runs, many rounds: "
                    "pairs that share the load)")
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--frame", default=f"{FRAME_WH[0]}x{FRAME_WH[1]}", metavar="WxH",
                    help="size of the decoded video frames (default: VGA, what a USB camera delivers)")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    args = ap.parse_args()
    try:
        frame_wh: tuple[int, int] = tuple(int(v) for v in args.frame.lower().split("x"))  # type: ignore[assignment]
        assert len(frame_wh) == 2 and min(frame_wh) > 0
    except (ValueError, AssertionError):
        raise SystemExit(f"--frame {args.frame!r}: give WxH, e.g. 640x480") from None
    load_before = load()
    all_cpus = os.sched_getaffinity(0)
    one = {min(all_cpus)}
    two = set(sorted(all_cpus)[:2])
    if len(two) < 2:
        raise SystemExit("this bench needs 2 CPUs (it compares one and two)")

    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", args.frames, frame_wh)
        model = tiny_convnet(Path(tmp) / "model.onnx", input_hw=INPUT_HW, channels=CHANNELS)
        uri = f"file://{clip}"
        pre = ImagePreprocess(INPUT_HW)
        session, infer = bare_session(model, args.threads), ModelInfer(model, threads=args.threads)
        x = np.random.default_rng(0).random((1, 3, *INPUT_HW), np.float32)
        latency = time_calls(lambda: session.run(None, {"input": x}), runs=100, warmup=10)
        bare_loop(uri, pre, session)  # warm-up: file cache, decoder, session
        stats: dict[str, Any] = {}

        def ember() -> tuple[int, float]:
            n, secs, stats[len(os.sched_getaffinity(0))] = ember_pipeline(uri, pre, infer)
            return n, secs

        runs = interleave({"bare_1": pinned(one, lambda: bare_loop(uri, pre, session)),
                           "ember_1": pinned(one, ember),
                           "bare_2": pinned(two, lambda: bare_loop(uri, pre, session)),
                           "ember_2": pinned(two, ember)},
                          args.rounds, progress=lambda r: tqdm(r, desc="rounds", file=sys.stderr))
        noop = {c: noop_rate(20000, cpus) for c, cpus in (("one_core", one), ("two_cores", two))}

    one_core, two_cores = (summary(runs[f"bare_{c}"], runs[f"ember_{c}"], args.frames) for c in (1, 2))
    write_result("pipeline_overhead", {
        "one_core": {**one_core, "target_ratio": 0.97, "threads": thread_count(2, False, cpus=1),
                     "ember_stage_p50_ms": stage_p50(stats[1])},
        "two_cores": {**two_cores, "target_ratio": 1.2, "threads": thread_count(2, False, cpus=2),
                      "ember_stage_p50_ms": stage_p50(stats[2])},
        "frames": args.frames, "rounds": args.rounds, "onnxruntime_threads": args.threads,
        "model": {"input_hw": list(INPUT_HW), "channels": list(CHANNELS),
                  "macs": tiny_convnet_macs(INPUT_HW, CHANNELS), "latency": latency.as_dict()},
        "frame_wh": list(frame_wh),
        "noop_pipeline_items_per_s": noop,
        "command": "python bench/pipeline_overhead.py",
    }, load_before)


def stage_p50(stats: dict[str, Any]) -> dict[str, float]:
    return {k: round(v["p50_ms"], 3) for k, v in stats["stages"].items()}


if __name__ == "__main__":
    main()
