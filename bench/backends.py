"""Latency p50/p95 of each precision tier on each available backend, for a ~45 M-MAC tiny_convnet.

Tiers: fp32; fp16 (onnxconverter-common, fp32 I/O kept); int8 QDQ (ONNX Runtime quantize_static,
MinMax calibration). LiteRT runs the .tflite files written by ``sdk.optimize.tflite_export``
(fp32 and full-integer int8; no fp16 file). One thread per backend where it can be set.

    .venv/bin/python bench/backends.py [--runs 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from _util import write_result
from tqdm import tqdm

from sdk.device import device_class
from sdk.models.builtin import tiny_convnet, tiny_convnet_macs
from sdk.models.variants import make_model_folder
from sdk.runtime.backends import available_backends, load_backend

HW, CHANNELS = (128, 128), (16, 32, 64)
OPTIONS = {"onnxruntime": {"threads": 1}, "litert": {"threads": 1}, "tinygrad": {}}


def time_runs(model, x: np.ndarray, runs: int) -> dict[str, float]:
    t_warm = time.perf_counter()
    model.warmup()
    warm_ms = (time.perf_counter() - t_warm) * 1e3
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        model.run(x)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"p50_ms": round(float(np.percentile(times, 50)), 4), "p95_ms": round(float(np.percentile(times, 95)), 4),
            "warmup_ms": round(warm_ms, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
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
    results: dict[str, dict[str, dict[str, float]]] = {}
    have = available_backends()
    for (tier, backend), path in tqdm(sorted(files.items(), key=lambda kv: (kv[0][1], kv[0][0])), desc="tiers"):
        if backend not in have:
            continue
        model = load_backend(path, backend, **OPTIONS[backend])
        xin = x.transpose(0, 2, 3, 1) if backend == "litert" else x
        results.setdefault(backend, {})[tier] = time_runs(model, xin, args.runs)
        model.close()
    write_result("backends", {"device_class": device_class(), "model": "tiny_convnet", "input_hw": HW,
                              "channels": CHANNELS, "macs": tiny_convnet_macs(HW, CHANNELS), "runs": args.runs,
                              "threads": 1, "latency": results})


if __name__ == "__main__":
    main()
