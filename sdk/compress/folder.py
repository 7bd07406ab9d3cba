"""From a compressed torch model to a model folder: ONNX export, MACs, measured latency (the SDK's
profiler loop, 1 thread) and the folder through ``sdk.optimize`` + the manifest API.

    from sdk.compress.folder import export_onnx, onnx_macs, onnx_latency_ms, write_folder
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ModelError

CALIB_SAMPLES = 256


def export_onnx(model: Any, path: str | Path, sample: np.ndarray, opset: int = 13) -> Path:
    """fp32 ONNX of ``model`` (eval mode, batch 1, input ``input``, output ``output``)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    x = torch.from_numpy(np.ascontiguousarray(sample[:1], np.float32))
    try:
        torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=["output"],
                          opset_version=opset, dynamo=False)
    except Exception as e:  # noqa: BLE001 - torch raises many types; say which model and why
        raise ModelError(f"cannot export the compressed model to ONNX: {str(e).splitlines()[0][:300]}") from None
    return path


def onnx_macs(path: str | Path) -> int:
    """Multiply-accumulates of one inference (``sdk.optimize.graph_stats``, the same count as ``ember profile``)."""
    from sdk.optimize.graph_stats import layer_stats

    return int(sum(s.macs for s in layer_stats(path)))


def onnx_latency_ms(paths: Sequence[str | Path], sample: np.ndarray, rounds: int = 3, min_time_s: float = 0.3
                    ) -> list[float]:
    """p50 latency (ms, 1 thread) of each model on the same input, measured in ``rounds`` rounds that
    visit every model in turn, keeping each model's fastest round (as ``ember optimize`` does)."""
    from sdk.optimize.measure import latency

    best = [float("inf")] * len(paths)
    x = np.ascontiguousarray(sample[:1], np.float32)
    for _ in range(rounds):
        for i, p in enumerate(paths):
            best[i] = min(best[i], latency(p, x, threads=1, min_time_s=min_time_s).p50_ms)
    return best


def _arrays(data: Any, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    from sdk.compress.train import iterate

    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray):
        return np.asarray(data[0][:limit], np.float32), np.asarray(data[1][:limit])
    xs, ys, n = [], [], 0
    for xb, yb in iterate(data):
        xs.append(xb.numpy())
        ys.append(np.asarray(yb))
        n += len(xs[-1])
        if limit is not None and n >= limit:
            break
    return np.concatenate(xs)[:limit], np.concatenate(ys)[:limit]


def write_folder(model: Any, out: str | Path, val: Any, *, name: str, labels: Sequence[str] = (),
                 facts: dict[str, Any] | None = None, int8_onnx: str | Path | None = None) -> dict[str, Any]:
    """Export ``model``, build and measure its tiers into ``out`` (``sdk.optimize.optimize``) and record
    ``facts`` (technique, settings, sizes) as the manifest's ``compression`` entry.

    ``int8_onnx``: an int8 QDQ model made by QAT; it becomes the ``int8`` tier instead of
    post-training quantization (its own learned scales, no recalibration), for ONNX Runtime and, converted
    by :func:`sdk.compress.qat_tflite.qdq_to_tflite`, for LiteRT."""
    from sdk.models.manifest import Manifest
    from sdk.optimize import measure_folder, optimize

    out = Path(out)
    x, y = _arrays(val, None)
    tmp = out / ".export"
    fp32 = export_onnx(model, tmp / f"{name}.onnx", x)
    tiers = ("fp32/onnxruntime",) if int8_onnx is not None else ("fp32/onnxruntime", "int8/onnxruntime")
    res = optimize(fp32, calib=(x[:CALIB_SAMPLES], None), evalset=(x, y), out=out, name=name, labels=labels,
                   tiers=tiers, eval_limit=None, report=int8_onnx is None)
    if int8_onnx is not None:
        from sdk.compress.qat_tflite import qdq_to_tflite

        shutil.copyfile(int8_onnx, out / "model.int8.onnx")
        qdq_to_tflite(int8_onnx, out / "model.int8.tflite")  # LiteRT int8 on the same learned grid
        m = Manifest.load(out)
        for file, backend in (("model.int8.onnx", "onnxruntime"), ("model.int8.tflite", "litert")):
            m.add_variant("int8", file, backend, folder=out).extra["source"] = "qat"
        m.save(out)
        res = measure_folder(out, (x, y))
    m = Manifest.load(out)
    m.extra["compression"] = {**(facts or {}), "macs": onnx_macs(out / "model.fp32.onnx")}
    m.save(out)
    shutil.rmtree(tmp, ignore_errors=True)
    return {"folder": str(out), **m.extra["compression"],
            "tiers": {t.key: {"accuracy": None if t.score is None else round(t.score / 100, 4),
                              "latency_ms": t.latency_ms_p50, "size_bytes": t.size_bytes}
                      for t in res.tiers if t.status == "ok"}}
