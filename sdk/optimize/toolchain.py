"""``ember optimize``: every precision tier of a model, measured on this device, in one model folder.

    from sdk.optimize import optimize
    res = optimize("model.onnx", calib=(x_cal, None), evalset=(x_val, y_val), out="models/shapes",
                   task="classification", max_drop=1.0)
    print(res.folder / "report.md")

The folder gets ``model.<tier>.onnx`` / ``model.<tier>.tflite``, ``manifest.json`` (metrics for
``sdk.device.device_class()``), ``sensitivity.json``, ``results.json`` and the report
(``report.md``, ``report.html``, ``pareto.png``). :func:`measure_folder` adds another device's
figures to an existing folder without rebuilding the tiers.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdk.device import device_class as detect_device_class
from sdk.errors import EmberError, ModelError
from sdk.models.manifest import Manifest
from sdk.optimize import energy
from sdk.optimize.data import Dataset, as_dataset
from sdk.optimize.graph_stats import load_inferred
from sdk.optimize.measure import agreement, latency, peak_memory_bytes, predict, score
from sdk.optimize.prepare import ShapeSpec, declared_input, prepare_model, resolve_shape
from sdk.optimize.quantize import quantizable_nodes
from sdk.optimize.sensitivity import (
    LayerSensitivity,
    MixedResult,
    block_ranking,
    mixed_precision,
    sensitivity_scan,
)
from sdk.optimize.tiers import (
    ALL_TIERS,
    SkipTier,
    TierResult,
    build_tier,
    dynamic_builder,
    fp16_builder,
    fp32_builder,
    int8_builder,
    tflite_builder,
)
from sdk.util.jsonutil import dumps

log = logging.getLogger(__name__)
LATENCY_ROUNDS, LATENCY_MIN_S = 5, 0.3  # latency: rounds over all tiers, seconds per tier and round
SELECTION_FRACTION = 0.5  # int8-mixed: share of the evaluation data that chooses the float layers
SCAN_MAX_LAYERS = 25  # int8-mixed: more weighted layers than this are scanned in blocks first (block_ranking)


@dataclass
class OptimizeResult:
    folder: Path
    name: str
    task: str
    device_class: str
    fp32_score: float | None
    tiers: list[TierResult]
    sensitivity: list[LayerSensitivity] = field(default_factory=list)
    mixed: MixedResult | None = None
    max_drop: float = 1.0
    prepare: dict[str, Any] = field(default_factory=dict)  # opset upgrade, static input shape, pre-processing

    def tier(self, key: str) -> TierResult:
        return next(t for t in self.tiers if t.key == key)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "task": self.task, "device_class": self.device_class,
                "fp32_score": self.fp32_score, "max_drop": self.max_drop, "prepare": self.prepare,
                "tiers": [t.to_dict() for t in self.tiers],
                "sensitivity": [s.to_dict() for s in self.sensitivity],
                "mixed": None if self.mixed is None else {
                    "excluded": self.mixed.excluded, "score": self.mixed.score, "drop_pts": self.mixed.drop_pts,
                    "within_budget": self.mixed.within_budget, "steps": self.mixed.steps,
                    "selection": self.mixed.selection}}


def optimize(model: str | Path, calib: Any, evalset: Any, out: str | Path, *, task: str = "classification",
             name: str | None = None, labels: Sequence[str] = (), tiers: Sequence[str] = ALL_TIERS,
             method: str = "minmax", max_drop: float = 1.0, calib_limit: int | None = 256,
             eval_limit: int | None = 1000, device: str | None = None, power_table: str | Path | None = None,
             report: bool = True, input_shape: ShapeSpec = None, decoder: str = "yolox") -> OptimizeResult:
    """Build, verify and measure the ``tiers`` (``"<tier>/<backend>"`` keys) of an fp32 ONNX model.

    Any opset ≥ 7 works (upgraded to the one the quantizer needs); symbolic input dimensions are
    taken from the data or from ``input_shape`` (``"NAME=1x3x320x320"``, a list or ``{name: list}``),
    and every tier is built at that static shape (see :mod:`sdk.optimize.prepare`).

    ``task="detection"``: ``evalset`` is a COCO-style folder scored by mAP@0.5 after ``decoder``
    (see :mod:`sdk.optimize.detection`), ``calib`` may be a folder of images."""
    src = Path(model)
    in_name, declared = declared_input(load_inferred(src))  # a clear ModelError for a missing model first
    if task == "detection":
        from sdk.optimize.detection import load_detection_data
        det_shape = resolve_shape(in_name, declared, [], input_shape) if None in declared[1:] or input_shape \
            else [1, *declared[1:]]
        calib, evalset = load_detection_data(calib, evalset, det_shape, calib_limit, eval_limit,  # type: ignore[arg-type]
                                             decoder)
    cal = as_dataset(calib, "calibration data").check(declared)  # type: ignore[arg-type]
    ev = as_dataset(evalset, "evaluation data").check(declared, need_labels=False)  # type: ignore[arg-type]
    shape = resolve_shape(in_name, declared, [(d.source, tuple(d.x.shape[1:])) for d in (cal, ev)], input_shape)
    cal, ev = cal.check(shape), ev.check(shape, need_labels=False)
    ev = Dataset(ev.x[:eval_limit], None if ev.y is None else ev.y[:eval_limit], ev.source)
    sel = None
    mixed_keys = [t for t in tiers if t.startswith("int8-mixed/")]
    if mixed_keys:  # choose the float layers on one part, report on the other
        sel, ev = ev.split(SELECTION_FRACTION)
    unknown = [t for t in tiers if t not in ALL_TIERS]
    if unknown:
        raise ModelError(f"unknown tier(s) {unknown}; choose from {', '.join(ALL_TIERS)}")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    work = folder / ".work"
    work.mkdir(exist_ok=True)
    for old in work.glob("calibration.*.json"):
        old.unlink()

    prepared = work / "prepared.onnx"
    info = prepare_model(src, prepared, shape)
    fp32_res = build_tier("fp32/onnxruntime", prepared, folder, fp32_builder(prepared))
    if fp32_res.status != "ok":
        raise ModelError(f"{src}: cannot copy the fp32 model: {fp32_res.reason}")
    fp32 = folder / fp32_res.file  # type: ignore[operator]
    fp32_out = predict(fp32, ev)
    y = ev.y if ev.y is not None else fp32_reference(fp32_out, task)
    if ev.y is None:
        log.warning("evaluation data has no labels: scores are agreement with fp32")
    fp32_score = score(fp32_out, y, task)
    res = OptimizeResult(folder, name or src.stem, task, device or detect_device_class(), fp32_score,
                         [fp32_res], max_drop=max_drop, prepare=info)
    builders = {
        "fp16/onnxruntime": lambda: fp16_builder(fp32, cal),
        "int8/onnxruntime": lambda: int8_builder(fp32, cal, method, calib_limit, work / f"calibration.{method}.json"),
        "int8-dynamic/onnxruntime": lambda: dynamic_builder(fp32),
        "fp32/litert": lambda: tflite_builder(fp32, None, None),
        "int8/litert": lambda: tflite_builder(fp32, cal, calib_limit),
    }
    for key in tiers:
        if key in builders:
            res.tiers.append(build_tier(key, fp32, folder, builders[key]()))
        elif mixed_keys and key == mixed_keys[0] and sel is not None:  # the search behind both int8-mixed tiers
            mixed = _mixed_tier(res, fp32, cal, sel, method, calib_limit, work)
            if "int8-mixed/onnxruntime" in tiers:
                res.tiers.append(mixed)
            elif mixed.file:
                (folder / mixed.file).unlink(missing_ok=True)
    if "int8-mixed/litert" in tiers:
        res.tiers.append(build_tier("int8-mixed/litert", fp32, folder,
                                    _litert_mixed_builder(res, fp32, cal, sel, method, calib_limit, work)))
    _check_tflite_agreement(res, folder, ev, fp32_out)
    measure_tiers(res, ev, y, shape, power_table)
    write_manifest(res, shape, labels)
    (folder / "results.json").write_text(dumps(res.to_dict(), indent=2) + "\n")
    (folder / "sensitivity.json").write_text(dumps([s.to_dict() for s in res.sensitivity], indent=2) + "\n")
    if report:
        from sdk.optimize.report import write_report
        write_report(res)
    shutil.rmtree(work, ignore_errors=True)
    return res


def fp32_reference(fp32_out: np.ndarray, task: str) -> np.ndarray:
    """Labels for unlabeled evaluation data: fp32's top-1 class, or (regression) fp32's outputs."""
    return fp32_out.reshape(len(fp32_out), -1).argmax(1) if task == "classification" else fp32_out


def _mixed_tier(res: OptimizeResult, fp32: Path, cal: Dataset, sel: Dataset, method: str,
                calib_limit: int | None, work: Path) -> TierResult:
    """Rank the layers and choose those kept in float on ``sel`` (the selection part of the evaluation
    data); the tier is scored later on the report part like every other tier."""
    out = TierResult("int8-mixed", "onnxruntime", "model.int8-mixed.onnx")
    try:
        sel_out = predict(fp32, sel)
        y = sel.y if sel.y is not None else fp32_reference(sel_out, res.task)
        sel_score = score(sel_out, y, res.task)
        scan = {"task": res.task, "method": method, "workdir": work, "labels": y, "fp32_outputs": sel_out,
                "fp32_score": sel_score, "calib_limit": calib_limit}
        by_block = len(quantizable_nodes(fp32)) > SCAN_MAX_LAYERS
        if by_block:
            ranking, res.sensitivity = block_ranking(fp32, cal, sel, **scan)
        else:
            ranking = res.sensitivity = sensitivity_scan(fp32, cal, sel, **scan)
        res.mixed = mixed_precision(fp32, res.folder / out.file, cal, sel, task=res.task, method=method,
                                    workdir=work, labels=y, ranking=ranking, fp32_score=sel_score,
                                    max_drop=res.max_drop, calib_limit=calib_limit)
        res.mixed.labels = y
        res.mixed.selection = {"samples": len(sel), "fp32_score": sel_score, "fraction": SELECTION_FRACTION,
                               "ranking": "blocks of 8 layers, then per layer in the 2 most sensitive blocks"
                               if by_block else "per-layer sensitivity"}
    except (EmberError, OSError, ValueError, RuntimeError) as e:
        out.status, out.reason, out.file = "failed", f"{type(e).__name__}: {e}", None
        return out
    if res.mixed.path is None:
        out.status, out.reason, out.file = "failed", "no layer can be quantized", None
    elif not res.mixed.excluded:
        out.status, out.file = "skipped", None
        out.reason = (f"plain int8 is already within {res.max_drop} points of fp32; no layer needs float"
                      if res.mixed.within_budget else f"no set of float layers reached the {res.max_drop}-point "
                      "budget and plain int8 scored best; use the int8 tier")
        (res.folder / "model.int8-mixed.onnx").unlink(missing_ok=True)
    else:
        out.size_bytes = res.mixed.path.stat().st_size
        out.extra = {"excluded_nodes": res.mixed.excluded, "within_budget": res.mixed.within_budget,
                     "calibration": method}
    return out


def _litert_mixed_builder(res: OptimizeResult, fp32: Path, cal: Dataset, sel: Dataset | None, method: str,
                          calib_limit: int | None, work: Path) -> Callable[[Path], dict[str, Any]]:
    """int8-mixed for LiteRT, chosen with LiteRT in the loop: the ONNX Runtime choice is tried first
    on the selection data; if LiteRT's int8 (its own calibration and kernels) misses the budget
    with it, the search goes on along the same ranking."""
    def build(dst: Path) -> dict[str, Any]:
        if res.mixed is None or res.mixed.path is None or sel is None:
            raise SkipTier("the int8-mixed search did not run or failed (see int8-mixed/onnxruntime)")
        m = mixed_precision(fp32, dst, cal, sel, task=res.task, method=method, workdir=work,
                            labels=res.mixed.labels, ranking=res.mixed.ranking,
                            fp32_score=res.mixed.selection["fp32_score"],
                            max_drop=res.max_drop, calib_limit=calib_limit, prune=4, first=res.mixed.excluded,
                            build=lambda excl, path: tflite_builder(fp32, cal, calib_limit, excl or None)(path))
        if not m.excluded:
            raise SkipTier(f"plain int8 LiteRT is within {res.max_drop} points on the selection data; use int8/litert"
                           if m.within_budget else "no set of float layers beat plain int8 LiteRT; use int8/litert")
        return {"layout": "NHWC", "excluded_nodes": m.excluded, "within_budget": m.within_budget,
                "selection": {"score": m.score, "steps": m.steps, "onnxruntime_choice": res.mixed.excluded}}
    return build


def _check_tflite_agreement(res: OptimizeResult, folder: Path, ev: Dataset, fp32_out: np.ndarray) -> None:
    """Compare each ``.tflite`` with its ONNX counterpart on the eval inputs (recorded in ``extra``)."""
    for t in res.tiers:
        if t.backend != "litert" or t.status != "ok":
            continue
        ref_key = f"{t.tier}/onnxruntime"
        ref = next((r for r in res.tiers if r.key == ref_key and r.status == "ok"), None)
        try:
            out = predict(folder / t.file, ev)  # type: ignore[operator]
            ref_out = fp32_out if ref is None or t.tier == "fp32" else predict(folder / ref.file, ev)  # type: ignore[operator]
        except EmberError as e:
            t.status, t.reason = "failed", f"cannot run: {e}"
            continue
        t.extra["agreement"] = {"vs": ref_key if ref is not None else "fp32/onnxruntime", **agreement(out, ref_out)}


def measure_tiers(res: OptimizeResult, ev: Dataset, y: np.ndarray | None, shape: list[int],
                  power_table: str | Path | None = None) -> None:
    """Score, latency (1 thread), peak memory and energy for every ``ok`` tier, in place.

    Latency is measured in :data:`LATENCY_ROUNDS` rounds that visit every tier in turn, keeping each
    tier's fastest round (every round's p50 is in ``extra["latency_rounds_ms"]``): a burst of other load then slows one round of one tier, not the ratio
    between tiers."""
    from tqdm import tqdm

    sample = ev.x[:1]
    ok = [t for t in res.tiers if t.status == "ok"]
    for t in tqdm(ok, desc="measure", unit="tier", leave=False):
        path = res.folder / t.file  # type: ignore[operator]
        try:
            if y is not None:
                out = predict(path, ev)
                if not np.isfinite(out).all():
                    t.status, t.reason = "failed", ("outputs are not finite (NaN/inf) on the evaluation data: "
                                                    "this precision cannot represent the model's values")
                    continue
                t.score = score(out, y, res.task)
                t.drop_pts = (res.fp32_score - t.score) if res.fp32_score is not None else None
            t.peak_mem_bytes = peak_memory_bytes(path, shape)
        except EmberError as e:
            t.status, t.reason = "failed", f"cannot measure: {e}"
    best: dict[str, Any] = {}
    rounds: dict[str, list[float]] = {}
    for _ in range(LATENCY_ROUNDS):
        for t in (t for t in ok if t.status == "ok"):
            try:
                lat = latency(res.folder / t.file, sample, threads=1, min_time_s=LATENCY_MIN_S)  # type: ignore[operator]
            except EmberError as e:
                t.status, t.reason = "failed", f"cannot measure: {e}"
                continue
            rounds.setdefault(t.key, []).append(lat.p50_ms)
            if t.key not in best or lat.p50_ms < best[t.key].p50_ms:
                best[t.key] = lat
    for t in (t for t in ok if t.status == "ok"):
        t.latency_ms_p50, t.latency_ms_p95 = best[t.key].p50_ms, best[t.key].p95_ms
        t.extra["latency_rounds_ms"] = rounds[t.key]  # p50 of each round: ratios within a round pair up
        t.energy_mj, t.extra["energy_source"] = energy.energy_mj(t.latency_ms_p50, res.device_class, power_table)


def write_manifest(res: OptimizeResult, shape: list[int], labels: Sequence[str] = ()) -> Manifest:
    """Create or update ``manifest.json`` with every ``ok`` tier and this device's metrics."""
    folder = res.folder
    try:
        m = Manifest.load(folder)
    except ModelError:
        m = Manifest(name=res.name, task=res.task, labels=list(labels),
                     input={"name": _input_name(folder / "model.fp32.onnx"), "shape": shape,
                            "layout": "NCHW" if len(shape) == 4 else ("NCW" if len(shape) == 3 else "ANY"),
                            "dtype": "float32"},
                     output={"decoder": "softmax" if res.task == "classification" else "identity",
                             "names": _output_names(folder / "model.fp32.onnx")})
    for t in res.tiers:
        if t.status != "ok":
            continue
        v = m.add_variant(t.tier, t.file, t.backend, folder=folder)  # type: ignore[arg-type]
        v.extra.update({k: val for k, val in t.extra.items()
                        if k not in ("energy_source", "selection", "latency_rounds_ms")})
    for t in res.tiers:
        if t.status == "ok":
            m.set_metrics(t.tier, t.backend, res.device_class, _metrics(t))
    m.save(folder)
    return m


def _metrics(t: TierResult) -> dict[str, Any]:
    d: dict[str, Any] = {"threads": 1, "measured_at": time.strftime("%Y-%m-%d")}
    for key, val in (("latency_ms_p50", t.latency_ms_p50), ("latency_ms_p95", t.latency_ms_p95),
                     ("peak_mem_bytes", t.peak_mem_bytes), ("energy_mj", t.energy_mj)):
        if val is not None:
            d[key] = val
    if t.score is not None:
        d["accuracy"] = t.score / 100.0
    return d


def _input_name(path: Path) -> str:
    g = load_inferred(path).graph
    inits = {i.name for i in g.initializer}
    return next(i.name for i in g.input if i.name not in inits)


def _output_names(path: Path) -> list[str]:
    return [o.name for o in load_inferred(path).graph.output]


def measure_folder(folder: str | Path, evalset: Any = None, *, device: str | None = None,
                   power_table: str | Path | None = None, report: bool = True) -> OptimizeResult:
    """Measure every usable variant of an existing model folder on this device and add the figures
    to its manifest (tiers are not rebuilt). Without ``evalset`` only speed/memory/energy."""
    folder = Path(folder)
    m = Manifest.load(folder)
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in m.input["shape"]]
    ev = as_dataset(evalset, "evaluation data").check(shape) if evalset is not None else \
        Dataset(np.random.default_rng(0).random([4, *shape[1:]], dtype=np.float32), None, "random inputs")
    res = OptimizeResult(folder, m.name, m.task, device or detect_device_class(), None,
                         [TierResult(v.tier, v.backend, v.file, size_bytes=v.path.stat().st_size, extra=dict(v.extra))
                          for v in m.verify_files()])
    fp32 = next((t for t in res.tiers if t.key == "fp32/onnxruntime"), None)
    if ev.y is not None and fp32 is not None:
        res.fp32_score = score(predict(folder / fp32.file, ev), ev.y, m.task)  # type: ignore[operator]
    measure_tiers(res, ev, ev.y, shape, power_table)
    for t in res.tiers:
        if t.status == "ok":
            m.set_metrics(t.tier, t.backend, res.device_class, _metrics(t))
    m.save(folder)
    if report:
        from sdk.optimize.report import write_report
        write_report(res)
    return res
