"""Per-layer quantization sensitivity and mixed precision.

Sensitivity: quantize one weighted layer at a time (with the ops after it up to the next weighted
layer; all others float), score it on the selection data and measure how far its outputs move
from fp32. Models with many layers are scanned in blocks first, then layer by layer inside the
most sensitive blocks (:func:`block_ranking`). Mixed precision: start from the fully int8 model
and keep the most sensitive layers in float (``nodes_to_exclude``), more at each step, until the
score is within ``max_drop`` points of fp32; then return to int8 each float layer the budget can
spare. The optimizer passes the selection part of
the evaluation data (``Dataset.split``) and reports the chosen tier on the other part, so the
choice is not scored on the data that made it. Calibration ranges are computed once and
reused (ONNX Runtime calibration cache) so the scan costs one quantization + one evaluation per
layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    ranking: list[LayerSensitivity] = field(default_factory=list)  # the layer order the search followed
    labels: np.ndarray | None = field(default=None, repr=False)  # the selection data's labels it scored against


def _progress(total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="layer", leave=False, dynamic_ncols=True)


def sensitivity_scan(fp32: Path, calib: Dataset, evalset: Dataset, *, task: str, method: str, workdir: Path,
                     labels: np.ndarray, fp32_outputs: np.ndarray, fp32_score: float,
                     calib_limit: int | None = None, groups: Sequence[Sequence[str]] | None = None
                     ) -> list[LayerSensitivity]:
    """Score each weighted layer (or each group of ``groups``) quantized alone, the rest float;
    most sensitive first (score drop, then output error)."""
    cache = workdir / f"calibration.{method}.json"
    scale = float(np.abs(fp32_outputs).mean()) or 1.0
    rows = []
    todo = [list(g) for g in groups] if groups is not None else [[n] for n in quantizable_nodes(fp32)]
    with _progress(len(todo), "sensitivity") as bar:
        for group in todo:
            dst = workdir / "layer.int8.onnx"
            samples = None if cache.is_file() else calib.samples(calib_limit)
            quantize_static_int8(fp32, dst, samples, method=method, cache=cache,
                                 nodes_to_quantize=float_region(fp32, group))
            out = predict(dst, evalset)
            s = score(out, labels, task)
            rows.append(LayerSensitivity(_label(group), s, fp32_score - s,
                                         float(np.abs(out - fp32_outputs).mean() / scale)))
            bar.update(1)
    return sorted(rows, key=lambda r: (-r.drop_pts, -r.output_error))


def _label(group: Sequence[str]) -> str:
    return group[0] if len(group) == 1 else f"{group[0]} … {group[-1]} ({len(group)} layers)"


def block_ranking(fp32: Path, calib: Dataset, evalset: Dataset, *, block: int = 8, refine: int = 2,
                  **scan: Any) -> tuple[list[LayerSensitivity], list[LayerSensitivity]]:
    """Ranking for models too big to scan layer by layer: the weighted layers in blocks of ``block``
    (graph order), each block int8 alone; then each layer of the ``refine`` most sensitive blocks
    int8 alone. Returns (ranking, measured rows): the refined layers most sensitive first, then the
    other blocks' layers, block by block (most sensitive block first), the later layer (nearer the
    outputs) first within a block."""
    layers = quantizable_nodes(fp32)
    blocks = [layers[i:i + block] for i in range(0, len(layers), block)]
    by_label = {_label(b): b for b in blocks}
    block_rows = sensitivity_scan(fp32, calib, evalset, groups=blocks, **scan)
    top = [by_label[r.node] for r in block_rows[:refine]]
    layer_rows = sensitivity_scan(fp32, calib, evalset, groups=[[n] for b in top for n in b], **scan)
    nan = float("nan")
    rest = [LayerSensitivity(n, nan, nan, nan) for r in block_rows[refine:] for n in reversed(by_label[r.node])]
    return layer_rows + rest, block_rows + layer_rows


def _steps(n: int, measured: int = 0) -> list[int]:
    """How many of the ranked layers to keep in float at each step: all counts for short rankings and
    through the ``measured`` head of a long one (layers with their own sensitivity), then roughly
    ×1.5 (each step is one quantization and one evaluation)."""
    if n <= 16:
        return list(range(n + 1))
    k = max(4, min(measured, n))
    ks = list(range(k + 1))
    while k < n:
        k = min(n, max(k + 1, round(k * 1.5)))
        ks.append(k)
    return ks


Build = Callable[[list[str], Path], object]  # (layers kept float, destination file)


def qdq_build(fp32: Path, calib: Dataset, method: str, cache: Path, calib_limit: int | None = None) -> Build:
    """ONNX Runtime int8 QDQ with the given layers (and their float regions) left in float."""
    def build(excluded: list[str], dst: Path) -> None:
        quantize_static_int8(fp32, dst, None if cache.is_file() else calib.samples(calib_limit), method=method,
                             nodes_to_exclude=float_region(fp32, excluded), cache=cache)
    return build


def mixed_precision(fp32: Path, dst: Path, calib: Dataset, evalset: Dataset, *, task: str, method: str,
                    workdir: Path, labels: np.ndarray, ranking: list[LayerSensitivity], fp32_score: float,
                    max_drop: float, calib_limit: int | None = None, prune: int = 8, build: Build | None = None,
                    first: list[str] | None = None,
                    on_step: Callable[[dict[str, Any]], None] | None = None) -> MixedResult:
    """Exclude the most sensitive layers from int8 until the score drop is ≤ ``max_drop`` points,
    then hand back to int8 each excluded layer (up to ``prune`` of them, least sensitive first)
    whose return keeps the drop within the budget: the fewest float layers found.

    ``build`` makes the model (default: ONNX Runtime QDQ); ``first``: a set to try before the
    ranking's prefixes (another backend's choice), the search then goes on past its deepest layer."""
    build = build or qdq_build(fp32, calib, method, workdir / f"calibration.{method}.json", calib_limit)
    result = MixedResult(None)

    def trial(excluded: list[str]) -> dict[str, Any]:
        build(excluded, dst)
        s = score(predict(dst, evalset), labels, task)
        step = {"excluded": excluded, "score": s, "drop_pts": fp32_score - s}
        result.steps.append(step)
        if on_step:
            on_step(step)
        return step

    chosen = None
    measured = next((i for i, r in enumerate(ranking) if np.isnan(r.score)), len(ranking))
    names = [r.node for r in ranking]
    start = 1 + max((names.index(n) for n in first or () if n in names), default=-1) if first is not None else 0
    ks = [k for k in _steps(len(ranking), measured) if k >= start + (first is not None)]
    with _progress(len(ks) + (first is not None), "mixed precision") as bar:
        for excluded in ([list(first)] if first is not None else []) + [names[:k] for k in ks]:
            if len(excluded) == len(ranking) and excluded:
                break  # everything float: that is the fp32 tier, not a mixed one
            step = trial(excluded)
            bar.update(1)
            if step["drop_pts"] <= max_drop:
                chosen = step
                break
    if chosen is not None and len(chosen["excluded"]) > 1 and chosen["excluded"] != first:
        for node in list(reversed(chosen["excluded"]))[:prune]:
            step = trial([n for n in chosen["excluded"] if n != node])
            if step["drop_pts"] <= max_drop:
                chosen = step
    best = chosen or (max(result.steps, key=lambda st: st["score"]) if result.steps else None)
    if best is not None:
        if result.steps[-1] is not best:  # rebuild the chosen model (the last trial overwrote dst)
            build(best["excluded"], dst)
        result.path, result.excluded = dst, best["excluded"]
        result.score, result.drop_pts = best["score"], best["drop_pts"]
        result.within_budget = chosen is not None
    result.ranking = ranking
    return result
