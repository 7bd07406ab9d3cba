"""Architecture search and cascade numbers for ``bench/compress.py`` (and standalone:
``python bench/_compress_search.py [--quick] [--smoke]`` prints one JSON object and writes
``bench/results/compress_search.json``).

* ``nas``: the surrogate's error (per-layer table fitted on 6 family members, judged on 10 others,
  measured with ONNX Runtime at 1 thread), then NSGA-II over width/depth/kernel/stride under a latency
  budget (0.8 x the app network's predicted latency), a peak-memory and an energy budget; trials train
  ``1/eta`` of the epochs on a 2,000-clip subset, the front's best are trained in full (9 epochs, same
  subset); the front's latency is measured.
  Accuracy: validation split (used to choose); ``test_accuracy``: the test split (report only).
* ``cascade``: small = a narrow family member (width 0.5, depth 3, stride 3) distilled from the big one
  on every training clip; big = the default network,
  i.e. the speech app's trained DS-CNN (``apps/speech/model/model.fp32.onnx``, trained on the same
  features). Threshold chosen on the validation split with a 0.5-point budget (z = 2 standard
  errors), reported on the test split, with a bootstrap interval of the loss.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._util import load, write_result

BIG_ONNX = Path(__file__).resolve().parents[1] / "apps" / "speech" / "model" / "model.fp32.onnx"
SPACE = {"width": [0.25, 0.375, 0.5, 0.75, 1.0], "depth": [1, 2, 3, 4], "kernel": [3, 5], "stride": [2, 3]}
SMALL = {"width": 0.5, "depth": 3, "kernel": 3, "stride": 3}
NAS_TRAIN = 2000  # clips (class-stratified) the search's proxy trains on: small inputs first


def _knob_sets(n: int, seed: int, exclude: list[dict[str, Any]] = ()) -> list[dict[str, Any]]:  # type: ignore[assignment]
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    while len(out) < n:
        k = {name: v[int(rng.integers(len(v)))] for name, v in SPACE.items()}
        if k not in out and k not in exclude:
            out.append(k)
    return out


def surrogate(task: Any, lut: Any, seed: int) -> dict[str, Any]:
    """Fit on 6 family members, report the error on 10 others (whole models measured by the same loop)."""
    cal = _knob_sets(6, seed)
    held = _knob_sets(10, seed + 1, cal)
    shape = (1, *task.input_shape)
    fit = lut.fit([task.build(**k) for k in cal], shape)
    rep = lut.mape([task.build(**k) for k in held], shape)
    return {"mape": rep["mape"], "max_ape": rep["max_ape"], "calibration_mape": fit.calibration_mape,
            "scale": fit.scale, "overhead_ms": fit.overhead_ms, "layers_in_table": len(lut.entries),
            "held_out": [{"knobs": k, "predicted_ms": p, "measured_ms": m}
                         for k, p, m in zip(held, rep["predicted_ms"], rep["measured_ms"], strict=True)]}


def nas(task: Any, lut: Any, seed: int, trials: int, epochs: int, out: Path) -> dict[str, Any]:
    from sdk.compress.latency_lut import model_costs
    from sdk.compress.nas import Budgets, FitProxy, SearchSpec, search

    shape = (1, *task.input_shape)
    ref = model_costs(task.build(), shape, lut)  # the app's network: the budgets sit just under it
    budgets = Budgets(latency_ms=round(0.8 * ref.latency_ms, 4), memory_kb=round(ref.peak_activation_bytes / 1024),
                      energy_mj=round(0.8 * ref.energy_mj, 4))
    proxy = FitProxy(_subsample(task.x_train, task.y_train, NAS_TRAIN, seed), task.val, epochs=epochs, lr=1e-2,
                     seed=seed, report=task.test)
    spec = SearchSpec(task.build, SPACE, proxy, shape, budgets, lut=lut)
    t0 = time.time()
    res = search(spec, trials, out=out, seed=seed, population=6, top=3, eta=3, rungs=1, progress=True)
    front = []
    for c in res.front:
        measured = lut.measure(task.build(**c.knobs), shape)
        front.append({"knobs": c.knobs, "accuracy": round(c.accuracy, 2),
                      "test_accuracy": round(c.extra.get("report_accuracy", float("nan")), 2),
                      "macs": int(c.costs["macs"]), "latency_ms": round(measured, 4),
                      "predicted_latency_ms": round(c.costs["latency_ms"], 4),
                      "peak_activation_kib": round(c.costs["peak_activation_bytes"] / 1024, 1),
                      "energy_mj": round(c.costs["energy_mj"], 4), "epochs": c.extra.get("epochs")})
    chosen = next((f for f, c in zip(front, res.front, strict=True) if c is res.chosen), None)
    return {"front": front, "chosen": chosen, "budgets": vars(budgets), "trials": len(res.trials),
            "over_budget": sum(not c.feasible for c in res.trials), "search_epochs": max(1, round(epochs / 3)),
            "final_epochs": epochs, "reference": {"knobs": "default (app network)", **ref.as_dict()},
            "seconds": round(time.time() - t0),
            "searched": [{"knobs": c.knobs, "accuracy": round(c.accuracy, 2), "feasible": c.feasible,
                          "predicted_latency_ms": round(c.costs["latency_ms"], 4)} for c in res.trials]}


def _subsample(x: np.ndarray, y: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if len(y) <= n:
        return x, y
    rng = np.random.default_rng(seed)
    idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), max(1, round(n * np.mean(y == c))), replace=False)
                                  for c in np.unique(y)]))
    return x[idx], y[idx]


def cascade(task: Any, lut: Any, seed: int, epochs: int, budget_points: float, work: Path) -> dict[str, Any]:
    import torch

    from sdk.compress import fit
    from sdk.compress.cascade import cascade_costs, onnx_probs, select_cascade
    from sdk.compress.distill import Distiller
    from sdk.compress.exits import simulate
    from sdk.compress.folder import export_onnx, onnx_macs

    torch.manual_seed(seed)
    small = task.build(**SMALL)
    teacher = task.pretrained()  # the app's network (the big model) in torch: the same function as BIG_ONNX
    fit(small, task.train, epochs, 1e-2, loss_fn=Distiller(teacher, temperature=4.0, alpha=0.7),
        seed=seed, desc="small (distilled)")
    small_onnx = export_onnx(small, work / "small.onnx", task.x_val)
    macs = [onnx_macs(small_onnx), onnx_macs(BIG_ONNX)]
    pv = [onnx_probs(p, task.x_val) for p in (small_onnx, BIG_ONNX)]
    pt = [onnx_probs(p, task.x_test) for p in (small_onnx, BIG_ONNX)]
    choice = select_cascade(pv[0], pv[1], task.y_val, *macs, budget_points=budget_points)
    held = simulate(pt, task.y_test, choice.threshold, cascade_costs(*macs))
    lat = [lut.measure(p) for p in (small_onnx, BIG_ONNX)]
    rate = held.exit_rates[0]
    rng = np.random.default_rng(seed)
    ok_c = _correct(pt, task.y_test, choice.threshold)
    ok_b = pt[1].argmax(1) == task.y_test
    boot = [float((ok_b[i].mean() - ok_c[i].mean()) * 100)
            for i in (rng.integers(0, len(ok_b), len(ok_b)) for _ in range(2000))]
    return {"accuracy": round(held.accuracy, 2), "big_accuracy": round(held.reference_accuracy, 2),
            "small_accuracy": round(float(np.mean(pt[0].argmax(1) == task.y_test) * 100), 2),
            "loss_points": round(held.loss_points, 2),
            "loss_points_95ci": [round(float(np.percentile(boot, q)), 2) for q in (2.5, 97.5)],
            "macs": macs[1], "small_macs": macs[0], "avg_macs": round(held.avg_cost),
            "macs_saved": round(1 - held.avg_cost / macs[1], 4), "exit_rate": round(rate, 4),
            "latency_ms": round(rate * lat[0] + (1 - rate) * (lat[0] + lat[1]), 4),
            "small_latency_ms": round(lat[0], 4), "big_latency_ms": round(lat[1], 4),
            "threshold": round(choice.threshold, 4), "budget_points": budget_points, "z": 2.0,
            "validation": {"n": choice.n, "loss_points": round(choice.loss_points, 2),
                           "exit_rate": round(choice.exit_rates[0], 4)},
            "test_n": held.n, "small": SMALL, "small_epochs": epochs, "big": str(BIG_ONNX.relative_to(BIG_ONNX.parents[3]))}


def _correct(probs: list[np.ndarray], y: np.ndarray, threshold: float) -> np.ndarray:
    from sdk.compress.exits import exit_index

    where = exit_index(probs, threshold)
    pred = np.stack([p.argmax(1) for p in probs])[where, np.arange(len(y))]
    return pred == y


def nas_and_cascade(task: Any, seed: int = 0, trials: int = 14, epochs: int = 9, small_epochs: int = 32,
                    budget_points: float = 0.5, lut_path: str | Path | None = None) -> dict[str, Any]:
    """The ``nas`` and ``cascade`` entries of bench/compress.py on ``task`` (see the module docstring)."""
    import torch

    from sdk.compress.latency_lut import LatencyTable

    torch.set_num_threads(1)
    lut = LatencyTable(lut_path)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sur = surrogate(task, lut, seed)
        res = nas(task, lut, seed, trials, epochs, work / "nas")
        res["surrogate_mape"] = round(sur["mape"], 2)
        res["surrogate"] = sur
        results_dir = Path(__file__).resolve().parent / "results"
        if (work / "nas" / "pareto.png").exists():  # the front and every trial are in this JSON already
            (results_dir / "compress_search_pareto.png").write_bytes((work / "nas" / "pareto.png").read_bytes())
        res["files"] = {"plot": "bench/results/compress_search_pareto.png"}
        cas = cascade(task, lut, seed, small_epochs, budget_points, work)
    return {"nas": res, "cascade": cas}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a quarter of the training clips (default: all)")
    p.add_argument("--smoke", action="store_true", help="tiny settings, to check the script runs")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    os.nice(5)
    from bench._compress_task import load_task

    before = load()
    task = load_task(args.seed, quick=args.quick)
    kw = {"trials": 3, "epochs": 3, "small_epochs": 1} if args.smoke else {}
    res = nas_and_cascade(task, args.seed, **kw)
    write_result("compress_search" + ("_smoke" if args.smoke else ""),
                 {"task": task.name, "quick": args.quick, "seed": args.seed, **res}, before)


if __name__ == "__main__":
    main()
