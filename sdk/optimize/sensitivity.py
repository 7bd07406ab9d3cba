"""Per-layer quantization sensitivity and mixed precision.

Sensitivity: quantize one weighted layer at a time (all others float), score it on the selection
data and measure how far its outputs move from fp32. Mixed precision: start from the fully int8
model and keep the most sensitive layers in float (``nodes_to_exclude``), one more at a time,
until the score is within ``max_drop`` points of fp32. The optimizer passes the selection part of
the evaluation data (``Dataset.split``) and reports the chosen tier on the other part, so the
choice is not scored on the data that made it. Calibration ranges are computed once and
reused (ONNX Runtime calibration cache) so the scan costs one quantization + one evaluation per
layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdk.optimize.data import Dataset
from sdk.optimize.measure import predict, score
from sdk.optimize.quantize import float_region, quantizable_nodes, quantize_static_int8


@dataclass
class LayerSensitivity:
    node: str
    score: float
    drop_pts: float
    output_error: float  # mean |int8-only-this-layer − fp32| of the outputs, relative to fp32's scale

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MixedResult:
    path: Path | None
    excluded: list[str] = field(default_factory=list)
    score: float | None = None
    drop_pts: float | None = None
    within_budget: bool = False
    steps: list[dict[str, Any]] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)  # the data it was chosen on (scores above are on it)


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="layer", leave=False, dynamic_ncols=True)


def sensitivity_scan(fp32: Path, calib: Dataset, evalset: Dataset, *, task: str, method: str, workdir: Path,
                     labels: np.ndarray, fp32_outputs: np.ndarray, fp32_score: float,
                     calib_limit: int | None = None) -> list[LayerSensitivity]:
    """Score each weighted layer quantized alone; most sensitive first."""
    cache = workdir / f"calibration.{method}.json"
    scale = float(np.abs(fp32_outputs).mean()) or 1.0
    rows = []
    nodes = quantizable_nodes(fp32)
    with _progress(len(nodes), "sensitivity") as bar:
        for node in nodes:
            dst = workdir / "layer.int8.onnx"
            samples = None if cache.is_file() else calib.samples(calib_limit)
            quantize_static_int8(fp32, dst, samples, method=method, nodes_to_quantize=[node], cache=cache)
            out = predict(dst, evalset)
            s = score(out, labels, task)
            rows.append(LayerSensitivity(node, s, fp32_score - s,
                                         float(np.abs(out - fp32_outputs).mean() / scale)))
            bar.update(1)
    return sorted(rows, key=lambda r: (-r.drop_pts, -r.output_error))


def depth_ranking(fp32: Path) -> list[LayerSensitivity]:
    """Weighted layers from the input on, for models too big for a per-layer scan: the stem (full
    resolution, raw input ranges) is where int8 hurts most in conv nets."""
    nan = float("nan")
    return [LayerSensitivity(n, nan, nan, nan) for n in quantizable_nodes(fp32)]


def _steps(n: int) -> list[int]:
    """How many of the ranked layers to keep in float at each step: all counts for short rankings,
    0-4 then roughly ×1.5 for long ones (each step is one quantization and one evaluation)."""
    if n <= 16:
        return list(range(n + 1))
    ks, k = [0, 1, 2, 3, 4], 4
    while k < n:
        k = min(n, max(k + 1, round(k * 1.5)))
        ks.append(k)
    return ks


def mixed_precision(fp32: Path, dst: Path, calib: Dataset, evalset: Dataset, *, task: str, method: str,
                    workdir: Path, labels: np.ndarray, ranking: list[LayerSensitivity], fp32_score: float,
                    max_drop: float, calib_limit: int | None = None,
                    on_step: Callable[[dict[str, Any]], None] | None = None) -> MixedResult:
    """Exclude the most sensitive layers from int8 until the score drop is ≤ ``max_drop`` points."""
    cache = workdir / f"calibration.{method}.json"
    result = MixedResult(None)
    with _progress(len(_steps(len(ranking))), "mixed precision") as bar:
        for k in _steps(len(ranking)):
            excluded = [r.node for r in ranking[:k]]
            if k == len(ranking) and k > 0:
                break  # everything float: that is the fp32 tier, not a mixed one
            samples = None if cache.is_file() else calib.samples(calib_limit)
            quantize_static_int8(fp32, dst, samples, method=method, nodes_to_exclude=float_region(fp32, excluded),
                                 cache=cache)
            s = score(predict(dst, evalset), labels, task)
            step = {"excluded": excluded, "score": s, "drop_pts": fp32_score - s}
            result.steps.append(step)
            if on_step:
                on_step(step)
            bar.update(1)
            if fp32_score - s <= max_drop:
                result.path, result.excluded, result.score = dst, excluded, s
                result.drop_pts, result.within_budget = fp32_score - s, True
                return result
    best = max(result.steps, key=lambda st: st["score"]) if result.steps else None
    if best is not None:
        quantize_static_int8(fp32, dst, None if cache.is_file() else calib.samples(calib_limit), method=method,
                             nodes_to_exclude=float_region(fp32, best["excluded"]), cache=cache)
        result.path, result.excluded = dst, best["excluded"]
        result.score, result.drop_pts = best["score"], best["drop_pts"]
    return result
