"""Benchmark of the optimization toolchain (``ember optimize``).

Runs every precision tier on each reference app's model that ships ``calib.npz`` + ``eval.npz``
beside its ``manifest.json`` (``apps/*/model*/``), and on two built-in conv nets trained briefly
with torch on oriented bars (a learnable synthetic task, no download):

* ``builtin-bars64``: 64×64, 8 orientations, conv-BatchNorm-ReLU ×5, ≈ 57 M MACs. Plain int8
  stays within 1 point, so this one answers "how fast is int8".
* ``builtin-finebars48-nobn``: 48×48, 16 orientations (11.25° apart), conv-bias-ReLU ×5 with no
  BatchNorm, ≈ 32 M MACs. Without normalization the activations grow layer by layer and the
  logits span hundreds of units while neighbouring orientations differ by a few, so int8 with
  per-tensor min/max ranges loses points; this one shows what mixed precision recovers.

Tier accuracies are on the report half of the evaluation set; ``int8-mixed`` chooses its float
layers on the other half (see ``sdk.optimize.toolchain``). ``spread`` gives each tier's accuracy
drop on three fresh evaluation sets and its speed-up over five interleaved latency rounds: the
differences under a point are within that spread.

Trained ONNX files are cached in the temp dir (``ember-bench-optimize/``), so only the first run
trains (one torch thread, deterministic: the same model on every machine run). Not run by CI.

    .venv/bin/python bench/optimize.py            # writes bench/results/optimize.json
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import REPO, load, parser, write_result

from sdk.optimize import optimize
from sdk.optimize.data import Dataset
from sdk.optimize.graph_stats import layer_stats
from sdk.optimize.measure import latency, predict, score
from sdk.optimize.synthetic import export_onnx, oriented_bars, train_classifier
from sdk.util.timing import interleave

CACHE = Path(tempfile.gettempdir()) / "ember-bench-optimize"
SPREAD_SEEDS = (13, 14, 15)
ONNX_INT8 = ["fp32/onnxruntime", "int8/onnxruntime"]


@dataclass(frozen=True)
class Builtin:
    name: str
    file: str
    size: int
    classes: int
    batchnorm: bool
    samples: int
    epochs: int
    lr: float


# bars64-wide: wide enough layers for int8 kernels to pay off (a 16-32-channel 29 M-MAC variant
# measured only 1.4× int8 speed-up here; see the README).
BARS64 = Builtin("builtin-bars64", "bars64-wide.onnx", 64, 8, True, 3000, 3, 3e-3)
FINE48 = Builtin("builtin-finebars48-nobn", "finebars48-nobn.onnx", 48, 16, False, 4000, 8, 1e-3)


def builtin_net(spec: Builtin):  # type: ignore[no-untyped-def]
    """conv(-bn)-relu ×5 (32, 64, 64, 128, 128 channels, three stride-2) → GAP → linear."""
    from torch import nn

    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=not spec.batchnorm)
        return [conv, nn.BatchNorm2d(cout), nn.ReLU()] if spec.batchnorm else [conv, nn.ReLU()]

    return nn.Sequential(*block(1, 32, 2), *block(32, 64, 1), *block(64, 64, 2), *block(64, 128, 1),
                         *block(128, 128, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, spec.classes))


def builtin_model(spec: Builtin) -> tuple[Path, tuple, tuple]:
    """(cached trained ONNX, calibration (x, None), evaluation (x, y)) for a built-in net."""
    CACHE.mkdir(parents=True, exist_ok=True)
    onnx_path = CACHE / spec.file
    xc, _ = oriented_bars(128, size=spec.size, classes=spec.classes, seed=11)
    xe, ye = oriented_bars(1000, size=spec.size, classes=spec.classes, seed=12)
    if not onnx_path.is_file():
        import torch

        torch.manual_seed(0)
        torch.set_num_threads(1)  # one thread: the same model on every run (and a frugal neighbour)
        torch.use_deterministic_algorithms(True)
        x, y = oriented_bars(spec.samples, size=spec.size, classes=spec.classes, seed=10)
        t0 = time.perf_counter()
        net = train_classifier(builtin_net(spec), x, y, epochs=spec.epochs, batch=64, lr=spec.lr)
        print(f"trained {spec.name} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        export_onnx(net, (1, 1, spec.size, spec.size), onnx_path)
    return onnx_path, (xc, None), (xe.astype(np.float32), ye)


def app_models() -> list[tuple[str, Path, Path, Path]]:
    """(name, fp32 onnx, calib.npz, eval.npz) for each app model folder that has all three."""
    found = []
    for manifest in sorted(REPO.glob("apps/*/model*/manifest.json")) + sorted(
            REPO.glob("apps/*/models/*/manifest.json")):
        folder = manifest.parent
        fp32 = next(iter(sorted(folder.glob("*fp32*.onnx"))), None)
        calib, evalset = folder / "calib.npz", folder / "eval.npz"
        if fp32 and calib.is_file() and evalset.is_file():
            found.append((folder.parent.name, fp32, calib, evalset))
        else:
            print(f"skip {folder}: needs an fp32 .onnx, calib.npz and eval.npz", file=sys.stderr)
    return found


def tier_rows(res, base_ms: float, label: str = "") -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """One row per tier in the issue's shape; ``label`` tags rows of an alternative calibration."""
    rows = []
    for t in res.tiers:
        key = t.key + (f" ({label})" if label else "")
        if t.status != "ok":
            rows.append({"tier": key, "status": t.status, "reason": t.reason})
            continue
        row = {"tier": key, "accuracy": round(t.score, 2), "latency_ms": round(t.latency_ms_p50, 4),
               "size_bytes": t.size_bytes, "peak_mem_bytes": t.peak_mem_bytes,
               "speedup_vs_fp32": round(base_ms / t.latency_ms_p50, 2), "accuracy_drop_pts": round(t.drop_pts, 2)}
        if "calibration" in t.extra:
            row["calibration"] = t.extra["calibration"]
        if "excluded_nodes" in t.extra:
            row["excluded_nodes"] = t.extra["excluded_nodes"]
        rows.append(row)
    return rows


def summarize(name: str, model: Path, res) -> dict:  # type: ignore[no-untyped-def]
    tiers = tier_rows(res, res.tier("fp32/onnxruntime").latency_ms_p50)
    ok = [t for t in tiers if "speedup_vs_fp32" in t and "int8" in t["tier"]]
    best = max((t for t in ok if t["accuracy_drop_pts"] <= 1.0), key=lambda t: t["speedup_vs_fp32"], default=None)
    out = {"name": name, "macs": sum(s.macs for s in layer_stats(model)), "tiers": tiers,
           "best_int8_within_1pt": best["tier"] if best else None,
           "target_2x_at_1pt_met": bool(best and best["speedup_vs_fp32"] >= 2.0)}
    if res.mixed is not None:  # chosen on the selection part; the tier rows score the report part
        out["mixed"] = {"excluded": res.mixed.excluded, "selection_score": res.mixed.score,
                        "selection": res.mixed.selection, "within_budget": res.mixed.within_budget,
                        "steps": [{**s, "drop_pts": round(s["drop_pts"], 2)} for s in res.mixed.steps]}
    if res.sensitivity:
        out["sensitivity"] = [{**s.to_dict(), "drop_pts": round(s.drop_pts, 2), "output_error": round(s.output_error, 5)}
                              for s in res.sensitivity]
    return out


def logit_diagnosis(model: Path, calib: tuple, evalset: tuple) -> dict[str, float]:
    """Why int8 logits can flip decisions: the int8 step of the logit range that min/max
    calibration sees, the margin between the two highest fp32 logits, and the fp32 accuracy once
    only its logits are rounded to that int8 grid (asymmetric, like the quantizer's)."""
    lc = predict(model, Dataset(calib[0]))
    lo, hi = min(float(lc.min()), 0.0), max(float(lc.max()), 0.0)
    step = (hi - lo) / 255
    zero = np.round(-128 - lo / step)
    logits = predict(model, Dataset(*evalset)).reshape(len(evalset[0]), -1)
    rounded = (np.clip(np.round(logits / step) + zero, -128, 127) - zero) * step
    top2 = np.sort(logits, axis=1)[:, -2:]
    margin = top2[:, 1] - top2[:, 0]
    return {"calib_logits_min": round(lo, 2), "calib_logits_max": round(hi, 2), "int8_logit_step": round(step, 3),
            "median_top2_margin": round(float(np.median(margin)), 3),
            "pct_margin_below_2_steps": round(float(np.mean(margin < 2 * step) * 100), 1),
            "fp32_accuracy_with_int8_logits": round(score(rounded, evalset[1]), 2)}


def spread(res, spec: Builtin, seeds: tuple[int, ...] = SPREAD_SEEDS, rounds: int = 5) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """How much the figures move: every ok tier's accuracy and drop on fresh evaluation sets (other
    seeds, same size), and its speed-up over fp32 in ``rounds`` interleaved latency rounds."""
    ok = {t.key: res.folder / t.file for t in res.tiers if t.status == "ok"}
    acc: dict[str, list[float]] = {k: [] for k in ok}
    for seed in seeds:
        xe, ye = oriented_bars(1000, size=spec.size, classes=spec.classes, seed=seed)
        ev = Dataset(xe.astype(np.float32), ye)
        for key, path in ok.items():
            acc[key].append(round(score(predict(path, ev), ye), 2))
    sample = oriented_bars(1, size=spec.size, classes=spec.classes, seed=99)[0].astype(np.float32)
    p50 = interleave({k: (lambda p=p: latency(p, sample, threads=1, min_time_s=0.2).p50_ms) for k, p in ok.items()},
                     rounds)
    base = "fp32/onnxruntime"
    drops = {k: [round(f - a, 2) for f, a in zip(acc[base], v, strict=True)] for k, v in acc.items() if k != base}
    speedups = {k: [round(f / x, 2) for f, x in zip(p50[base], v, strict=True)] for k, v in p50.items() if k != base}
    return {"eval_seeds": list(seeds), "eval_samples": 1000, "accuracy": acc, "drop_pts": drops,
            "drop_pts_range": {k: [min(v), max(v)] for k, v in drops.items()},
            "latency_rounds": rounds, "speedup_rounds": speedups,
            "speedup_range": {k: [min(v), max(v)] for k, v in speedups.items()}}


def run_builtin(spec: Builtin, out_root: Path, other_methods: tuple[str, ...] = ()) -> dict[str, Any]:
    """All tiers (min/max calibration, 1-point budget); optionally int8 rows for other calibrations."""
    onnx_path, calib, evalset = builtin_model(spec)
    t0 = time.perf_counter()
    res = optimize(onnx_path, calib, evalset, out_root / spec.file.removesuffix(".onnx"), name=spec.name,
                   max_drop=1.0)
    summary = summarize(spec.name, onnx_path, res)
    summary["optimize_seconds"] = round(time.perf_counter() - t0, 1)
    summary["report"] = str(out_root / spec.file.removesuffix(".onnx") / "report.md")
    summary["logits"] = logit_diagnosis(onnx_path, calib, evalset)
    summary["spread"] = spread(res, spec)
    base_ms = res.tier("fp32/onnxruntime").latency_ms_p50
    for method in other_methods:  # the fp32 latency of the main run is the reference for speed-ups
        alt = optimize(onnx_path, calib, evalset, out_root / f"{spec.file.removesuffix('.onnx')}-{method}",
                       name=spec.name, tiers=ONNX_INT8, method=method, report=False)
        summary["tiers"] += [r for r in tier_rows(alt, base_ms, f"{method} calibration")
                             if r["tier"].startswith("int8")]
    return summary


def main() -> None:
    parser(__doc__).parse_args()
    load_before = load()
    models = []
    out_root = CACHE / "out"
    for name, fp32, calib, evalset in app_models():
        res = optimize(fp32, calib, evalset, out_root / name, name=name, max_drop=1.0)
        models.append(summarize(name, fp32, res))
    models.append(run_builtin(BARS64, out_root))
    models.append(run_builtin(FINE48, out_root, other_methods=("entropy", "percentile")))
    write_result("optimize", {
        "models": models,
        "scores": "tier accuracies are on the report half of the 1000-sample evaluation set (seed 12); int8-mixed "
                  "chose its float layers on the other (selection) half; spread: the same tiers on fresh "
                  "1000-sample sets (seeds 13-15) and speed-ups over 5 interleaved latency rounds",
        "command": "python bench/optimize.py",
    }, load_before)


if __name__ == "__main__":
    main()
