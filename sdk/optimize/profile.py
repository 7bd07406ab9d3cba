"""``ember profile``: per-layer latency, MACs and parameters, peak activation memory, model size
and an energy estimate for one model on this device.

Per-layer times come from ONNX Runtime's profiler (``enable_profiling``; its JSON trace is parsed)
on a session with *basic* graph optimizations, so every ONNX node keeps its name; the totals
(p50/p95) come from the normally optimized session at the same thread count.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdk.device import device_class as detect_device_class
from sdk.errors import ModelError
from sdk.optimize import energy
from sdk.optimize.graph_stats import layer_stats, load_inferred, peak_activation_bytes
from sdk.optimize.measure import backend_for, latency


@dataclass
class LayerProfile:
    name: str
    op_type: str
    macs: int
    params: int
    output_shape: list[int]
    latency_ms: float | None = None


@dataclass
class Profile:
    model: str
    device_class: str
    size_bytes: int
    threads: int
    latency_ms_p50: float
    latency_ms_p95: float
    energy_mj: float
    energy_source: str
    macs: int | None = None
    params: int | None = None
    peak_activation_bytes: int | None = None
    largest_tensor_bytes: int | None = None
    layers: list[LayerProfile] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def layer_latencies(model_path: str | Path, sample: np.ndarray, runs: int = 20, threads: int = 1) -> dict[str, float]:
    """Mean milliseconds per ONNX node name from an ONNX Runtime profiling trace."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.enable_profiling = True
        so.profile_file_prefix = str(Path(tmp) / "ember_profile")
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        try:
            sess = ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])
            feed = {sess.get_inputs()[0].name: sample.astype(np.float32)}
            for _ in range(runs):
                sess.run(None, feed)
            trace = json.loads(Path(sess.end_profiling()).read_text())
        except Exception as e:  # noqa: BLE001 - ORT raises several unrelated types (Fail, InvalidGraph, ...)
            text = " ".join(str(e).split())[:300]
            raise ModelError(f"{model_path}: onnxruntime cannot profile its layers ({text})") from None
    total: dict[str, float] = {}
    for ev in trace:
        name = ev.get("name", "")
        if ev.get("cat") == "Node" and name.endswith("_kernel_time"):
            key = name[: -len("_kernel_time")]
            total[key] = total.get(key, 0.0) + ev.get("dur", 0) / 1e3
    return {k: v / runs for k, v in total.items()}


MAX_INPUT_ELEMENTS = 1 << 28


def input_shape_of(model_path: str | Path) -> list[int]:
    """The first input's shape (ONNX layout; dynamic dims as 1), for ``.onnx`` and ``.tflite``, as the
    model's runtime reads it (a file it cannot load is a ``BackendError``)."""
    from sdk.runtime.backends import load_backend

    backend = backend_for(model_path)
    with load_backend(model_path, backend) as m:
        if not m.inputs:
            raise ModelError(f"{model_path}: the model has no inputs, so there is nothing to profile")
        s = list(m.inputs[0].concrete_shape())
    if int(np.prod(s, dtype=np.float64)) > MAX_INPUT_ELEMENTS:
        raise ModelError(f"{model_path}: input shape {s} is too large to profile (over {MAX_INPUT_ELEMENTS} values)")
    if backend == "litert":
        return [s[0], s[3], s[1], s[2]] if len(s) == 4 else ([s[0], s[2], s[1]] if len(s) == 3 else s)
    return s


def profile_model(model_path: str | Path, *, device_class: str | None = None, power_table: str | Path | None = None,
                  threads: int = 1, runs: int = 50, layer_runs: int = 20, sample: np.ndarray | None = None) -> Profile:
    """Profile ``model_path`` (``.onnx``: everything; ``.tflite``: totals only)."""
    path = Path(model_path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    dev = device_class or detect_device_class()
    x = sample if sample is not None else np.random.default_rng(0).random(input_shape_of(path), dtype=np.float32)
    lat = latency(path, x, threads=threads, runs=runs)
    mj, source = energy.energy_mj(lat.p50_ms, dev, power_table)
    rapl = _rapl_energy(path, x, threads)
    if rapl is not None:
        mj, source = rapl, "rapl"
    prof = Profile(str(path), dev, path.stat().st_size, threads, lat.p50_ms, lat.p95_ms, mj, source)
    if backend_for(path) == "onnxruntime":
        model = load_inferred(path)
        stats = layer_stats(path, model)
        times = layer_latencies(path, x, layer_runs, threads)
        prof.layers = [LayerProfile(s.name, s.op_type, s.macs, s.params, s.output_shape, times.get(s.name))
                       for s in stats if s.op_type != "Constant"]
        prof.macs = sum(s.macs for s in stats)
        prof.params = sum(s.params for s in stats)
        prof.peak_activation_bytes, prof.largest_tensor_bytes = peak_activation_bytes(path, model)
    return prof


def _rapl_energy(path: Path, x: np.ndarray, threads: int) -> float | None:
    if not energy.rapl_readable():
        return None
    from sdk.optimize.tflite_export import to_tflite_layout
    from sdk.runtime.backends import load_backend

    backend = backend_for(path)
    feed = to_tflite_layout(x) if backend == "litert" else x
    with load_backend(path, backend, threads=threads) as m:
        return energy.measure_rapl_mj(lambda: m.run(feed), runs=200)


def format_table(prof: Profile, top: int | None = None) -> str:
    """The profile as a terminal table (layers sorted by graph order; ``top`` slowest only)."""
    lines = [f"model {prof.model}  device {prof.device_class}  threads {prof.threads}",
             (f"latency p50 {prof.latency_ms_p50:.3f} ms  p95 {prof.latency_ms_p95:.3f} ms  "
             f"energy {prof.energy_mj:.3f} mJ/inference ({prof.energy_source})"),
             f"size {prof.size_bytes / 1024:.1f} KiB"]
    if prof.macs is not None:
        lines.append(f"MACs {prof.macs:,}  params {prof.params:,}  peak activations "
                     f"{(prof.peak_activation_bytes or 0) / 1024:.1f} KiB  largest tensor "
                     f"{(prof.largest_tensor_bytes or 0) / 1024:.1f} KiB")
    if not prof.layers:
        return "\n".join(lines)
    layers = prof.layers
    if top:
        layers = sorted(layers, key=lambda r: -(r.latency_ms or 0))[:top]
    if any(r.op_type == "QuantizeLinear" for r in prof.layers):
        lines.append("note: per-layer times of a QDQ model are measured unfused (basic optimizations); "
                     "the p50/p95 totals are the fused int8 model")
    timed = sum(r.latency_ms or 0 for r in prof.layers) or 1.0
    w = max(12, *(len(r.name) for r in layers))
    lines.append("")
    lines.append(f"{'layer':<{w}}  {'op':<18} {'MACs':>12} {'params':>9} {'ms':>8} {'%':>5}  output")
    for r in layers:
        ms = f"{r.latency_ms:8.4f}" if r.latency_ms is not None else f"{'-':>8}"
        pct = f"{100 * (r.latency_ms or 0) / timed:5.1f}"
        lines.append(f"{r.name:<{w}}  {r.op_type:<18} {r.macs:>12,} {r.params:>9,} {ms} {pct}  {r.output_shape}")
    return "\n".join(lines)
