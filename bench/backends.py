"""Latency p50/p95 of each precision tier on each available backend, for a ~45 M-MAC tiny_convnet.

Tiers: fp32; fp16 (onnxconverter-common, fp32 I/O kept); int8 QDQ (ONNX Runtime quantize_static,
MinMax calibration). LiteRT runs the .tflite files written by ``sdk.optimize.tflite_export``
(fp32 and full-integer int8; no fp16 file). One thread per backend where it can be set.

Every model is timed in interleaved rounds (the same background load for all); p50/p95 are
medians over the rounds.

    .venv/bin/python bench/backends.py [--runs 40] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from _util import load, write_result
from tqdm import tqdm

from sdk.device import device_class
from sdk.models.builtin import tiny_convnet, tiny_convnet_macs
from sdk.models.variants import make_model_folder
from sdk.runtime.backends import available_backends, load_backend
from sdk.util.timing import interleave, time_calls

HW, CHANNELS = (128, 128), (16, 32, 64)
OPTIONS = {"onnxruntime": {"threads": 1}, "litert": {"threads": 1}, "tinygrad": {}}


def time_rounds(models: dict[str, Any], inputs: dict[str, np.ndarray], runs: int, rounds: int) -> dict[str, Any]:
    """Every model timed once per round, rounds interleaved (the same load for all); p50/p95 are
    medians over the rounds, with each round's p50."""
    per = interleave({k: (lambda k=k: time_calls(lambda: models[k].run(inputs[k]), runs=runs, warmup=2,
                                                 min_time_s=0.2)) for k in models}, rounds)
    return {k: {"p50_ms": round(statistics.median(t.p50_ms for t in ts), 4),
                "p95_ms": round(statistics.median(t.p95_ms for t in ts), 4),
                "p50_ms_rounds": [round(t.p50_ms, 4) for t in ts]} for k, ts in per.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=40, help="timed runs per model and round")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    load_before = load()
    tmp = Path(tempfile.mkdtemp(prefix="ember-backends-"))
    src = tiny_convnet(tmp / "src.onnx", input_hw=HW, channels=CHANNELS)
    rng = np.random.default_rng(0)
    calib = [rng.random((1, 3, *HW), dtype=np.float32) for _ in range(16)]
    manifest = make_model_folder(tmp / "m", src, "bench", tiers=("fp32", "fp16", "int8"), calibration=calib)
    files = {(t, b): manifest.variant(t).path for t in ("fp32", "fp16", "int8") for b in ("onnxruntime", "tinygrad")}
    try:
        from sdk.optimize.tflite_export import onnx_to_tflite

        files["fp32", "litert"] = onnx_to_tflite(src, tmp / "m.fp32.tflite")
        files["int8", "litert"] = onnx_to_tflite(src, tmp / "m.int8.tflite", int8=True, calibration=calib)
    except ImportError:
        pass
    x = calib[0]
    have = available_backends()
    models, inputs, warmup_ms = {}, {}, {}
    for (tier, backend), path in tqdm(sorted(files.items(), key=lambda kv: (kv[0][1], kv[0][0])), desc="load"):
        if backend in have:
            key = f"{backend}/{tier}"
            models[key] = load_backend(path, backend, **OPTIONS[backend])
            warmup_ms[key] = round(models[key].warmup(), 1)  # the last warm-up run (tinygrad compiles before)
            inputs[key] = x.transpose(0, 2, 3, 1) if backend == "litert" else x
    timed = time_rounds(models, inputs, args.runs, args.rounds)
    for m in models.values():
        m.close()
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for key, t in timed.items():
        backend, tier = key.split("/")
        results.setdefault(backend, {})[tier] = {**t, "last_warmup_run_ms": warmup_ms[key]}
    write_result("backends", {"device_class": device_class(), "model": "tiny_convnet", "input_hw": HW,
                              "channels": CHANNELS, "macs": tiny_convnet_macs(HW, CHANNELS), "runs": args.runs,
                              "rounds": args.rounds, "threads": 1, "latency": results,
                              "command": "python bench/backends.py"}, load_before)


if __name__ == "__main__":
    main()
