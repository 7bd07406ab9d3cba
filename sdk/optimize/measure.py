"""Measure a model file on this device: outputs on a data set, task score, agreement between two
variants, latency percentiles at a fixed thread count, and peak memory of a fresh process.

Models run through :func:`sdk.runtime.backends.load_backend`; ``.tflite`` files take
channels-last inputs, so arrays are moved with :func:`to_tflite_layout` here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdk.errors import ModelError
from sdk.optimize.data import Dataset
from sdk.optimize.tflite_export import from_tflite_layout, to_tflite_layout
from sdk.runtime.backends import load_backend
from sdk.util.timing import time_calls

TASKS = ("classification", "regression", "detection")


def backend_for(path: str | Path) -> str:
    return "litert" if str(path).endswith(".tflite") else "onnxruntime"


@dataclass
class Latency:
    p50_ms: float
    p95_ms: float
    mean_ms: float
    runs: int


def predict_outputs(path: str | Path, data: Dataset, threads: int = 1, limit: int | None = None
                    ) -> list[np.ndarray]:
    """Every output for every sample (batch 1): one stack ``[n, ...]`` per output, ONNX layout, graph order."""
    backend = backend_for(path)
    with load_backend(path, backend, threads=threads) as model:
        outs: list[list[np.ndarray]] = []
        for x in data.samples(limit):
            ys = model.run(to_tflite_layout(x) if backend == "litert" else x)
            for k, y in enumerate(ys):
                if len(outs) <= k:
                    outs.append([])
                outs[k].append(from_tflite_layout(y)[0] if backend == "litert" else y[0])
    return [np.stack(o) for o in outs]


def predict(path: str | Path, data: Dataset, threads: int = 1, limit: int | None = None) -> np.ndarray:
    """The output for every sample (batch 1), stacked: [n, ...] in the ONNX layout. A model with
    several outputs (detectors, OCR) gives them flattened and concatenated per sample, in graph
    order, so scoring, agreement and regression see all of them: ``[n, total]``."""
    outs = predict_outputs(path, data, threads, limit)
    if len(outs) == 1:
        return outs[0]
    return np.concatenate([o.reshape(len(o), -1) for o in outs], axis=1)


def score(outputs: np.ndarray, labels: np.ndarray, task: str = "classification") -> float:
    """Classification: top-1 accuracy in percent. Regression: 100·R² (higher is better). Detection:
    mAP@0.5 in percent (``labels`` from :func:`sdk.optimize.detection.load_coco`)."""
    if task == "detection":
        from sdk.optimize.detection import score_detection
        return score_detection(outputs, labels)
    if task == "classification":
        return float(np.mean(outputs.reshape(len(outputs), -1).argmax(1) == labels.reshape(-1)) * 100)
    if task == "regression":
        y = labels.reshape(outputs.shape).astype(np.float64)
        ss = float(((y - y.mean()) ** 2).sum()) or 1.0
        return float(100 * (1 - ((outputs - y) ** 2).sum() / ss))
    raise ModelError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")


def agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Top-1 agreement (percent) and max/mean absolute difference of two output stacks."""
    a2, b2 = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return {"top1_agreement_pct": float(np.mean(a2.argmax(1) == b2.argmax(1)) * 100),
            "max_abs_diff": float(np.abs(a2 - b2).max()), "mean_abs_diff": float(np.abs(a2 - b2).mean())}


def latency(path: str | Path, sample: np.ndarray, threads: int = 1, runs: int = 50, warmup: int = 5,
            budget_s: float = 5.0, min_time_s: float = 0.0) -> Latency:
    """Latency percentiles of single-sample inference: at least ``runs`` runs and ``min_time_s``
    seconds (a sub-millisecond model's 50 runs would otherwise fit inside one burst of another
    process's load), stopping early after ``budget_s`` seconds."""
    backend = backend_for(path)
    x = to_tflite_layout(sample) if backend == "litert" else sample
    with load_backend(path, backend, threads=threads) as model:
        t = time_calls(lambda: model.run(x), runs=runs, warmup=warmup, min_time_s=min_time_s, budget_s=budget_s)
    return Latency(t.p50_ms, t.p95_ms, t.mean_ms, t.runs)


_PEAK_SCRIPT = """
import json, os, resource, sys
import numpy as np
from sdk.runtime.backends import load_backend
from sdk.util.timing import time_calls
path, backend, shape = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
x = np.zeros(shape, np.float32)
if backend == "litert":
    from ai_edge_litert import interpreter  # noqa: F401  (runtime import is not the model's memory)
else:
    import onnxruntime  # noqa: F401

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return None

before = status("VmRSS")
try:  # reset the high-water mark so imports do not count (Linux >= 4.0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
except OSError:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with load_backend(path, backend, threads=1) as m:
    for _ in range(3):
        m.run(x)
    after = status("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_kib": max(after - before, 0)}))
"""


def peak_memory_bytes(path: str | Path, input_shape: list[int], timeout_s: float = 60) -> int | None:
    """Peak resident memory added by loading and running the model, in a fresh process (None on failure)."""
    backend = backend_for(path)
    shape = list(to_tflite_layout(np.zeros(input_shape, np.float32)).shape) if backend == "litert" else input_shape
    try:
        proc = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, str(path), backend, json.dumps(shape)],
                              capture_output=True, text=True, timeout=timeout_s, check=True)
        return int(json.loads(proc.stdout.strip().splitlines()[-1])["peak_kib"]) * 1024
    except (subprocess.SubprocessError, ValueError, IndexError, KeyError):
        return None
