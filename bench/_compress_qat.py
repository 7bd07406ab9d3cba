"""QAT vs PTQ int8 where PTQ loses points: bench/optimize.py's ``builtin-finebars48-nobn`` (48×48 oriented
bars, 16 orientations, conv-bias-ReLU ×5 without batch norm, ≈ 32 M MACs). The speech models never lose a
point under PTQ, so the issue's fallback ("a built-in conv net on a learnable task") is used for the QAT
target.

* fp32 (converged): bench/optimize.py trains this net 8 epochs (cached in ``ember-bench-optimize/``);
  that net is under-trained (2 more epochs add ~1.6 points), so it is trained further with
  ``sdk.compress.fit`` (AdamW, cosine from lr 1e-3, cross-entropy, the same 4000 images) for each of
  ``FP32_EPOCHS`` more epochs and the run best on the *selection* set is the fp32 model (ties: fewer
  epochs). The 8-epoch start is reported too (``start``).
* PTQ: the SDK's static int8 path (``sdk.optimize.quantize.quantize_static_int8``: min/max ranges,
  per-channel weights) of the converged fp32 model, calibrated on bench/optimize.py's 128 images (seed 11).
* QAT: ``sdk.compress.qat.quantize_aware`` of the converged fp32 model (ranges initialised on the same
  128 images), fine-tuned on the 4000 training images, one run per seed; exported with its learned
  scales by ``export_qdq`` (ONNX Runtime int8) and ``qdq_to_tflite`` (LiteRT int8), both scored.
* control: the converged fp32 model fine-tuned exactly as QAT (seed 0) without fake quantization
  (shows what QAT's extra epochs alone would give).

Splits: ``selection`` = bench/optimize.py's evaluation set (seed 12, 1000 images; every choice is made
there); ``report`` = three fresh sets (seeds 20-22, 1000 images each), reported as mean ± std over the
sets (and over QAT seeds).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

REPORT_SEEDS = (20, 21, 22)
FP32_EPOCHS = (2, 4)  # further fp32 training of the 8-epoch net; the best on the selection set is kept
FP32_LR = 1e-3


def _torch_net(onnx_path: Path) -> Any:
    """bench/optimize.py's network with the weights of its trained ONNX file (same initializer names)."""
    import onnx
    import torch
    from onnx import numpy_helper

    from bench.optimize import FINE48, builtin_net

    net = builtin_net(FINE48)
    weights = {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in onnx.load(str(onnx_path)).graph.initializer}
    net.load_state_dict(weights)
    return net.eval()


def _acc(path: Path, sets: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    from sdk.optimize.data import Dataset
    from sdk.optimize.measure import predict, score

    return [round(score(predict(path, Dataset(x, y)), y), 2) for x, y in sets]


def _summary(per_set: list[list[float]]) -> dict[str, Any]:
    a = np.array(per_set, dtype=float)  # [runs, report sets]
    return {"accuracy": round(float(a.mean()), 2), "accuracy_std": round(float(a.std(ddof=1)), 2) if a.size > 1 else 0.0,
            "accuracy_per_set": np.round(a.mean(0), 2).tolist()}


def qat_builtin(work: Path, seeds: int = 3, epochs: int = 2, lr: float = 1e-4) -> dict[str, Any]:
    """fp32 (converged) / PTQ int8 / QAT int8 (ONNX Runtime and LiteRT) of builtin-finebars48-nobn on the
    selection and report sets."""
    from bench.optimize import FINE48, builtin_model
    from sdk.compress.folder import export_onnx, onnx_macs
    from sdk.optimize.quantize import quantize_static_int8
    from sdk.optimize.synthetic import oriented_bars

    work.mkdir(parents=True, exist_ok=True)
    start_onnx, (xc, _), selection = builtin_model(FINE48)
    bars = {"size": FINE48.size, "classes": FINE48.classes}
    report = [tuple(a.astype(np.float32) if a.dtype.kind == "f" else a for a in oriented_bars(1000, seed=s, **bars))
              for s in REPORT_SEEDS]
    sets = [selection, *report]
    xt, yt = oriented_bars(FINE48.samples, seed=10, **bars)
    train, xc = (xt.astype(np.float32), yt), xc.astype(np.float32)
    start = _torch_net(start_onnx)
    runs = {e: _train_fp32(start, train, e, FP32_LR, work) for e in FP32_EPOCHS}
    sel = {e: _acc(export_onnx(n, work / f"finebars48.fp32_e{e}.onnx", xc[:1]), [selection])[0] for e, n in runs.items()}
    best = max(FP32_EPOCHS, key=lambda e: (sel[e], -e))
    fp32_net, fp32 = runs[best], work / f"finebars48.fp32_e{best}.onnx"
    ptq = quantize_static_int8(fp32, work / "finebars48.ptq.onnx", [c[None] for c in xc])
    qat = [_qat_run(fp32_net, train, xc, seed, epochs, lr, work) for seed in range(seeds)]
    ctl = _train_fp32(fp32_net, train, epochs, lr, work, tag=f"_e{best}")
    row = {"model": FINE48.name, "macs": onnx_macs(fp32)}
    acc = {k: _acc(p, sets) for k, p in (("start", start_onnx), ("fp32", fp32), ("ptq", ptq),
                                         ("ctl", export_onnx(ctl, work / "finebars48.fp32ctl.onnx", xc[:1])))}
    ort_runs, lite_runs = [_acc(r["onnx"], sets) for r in qat], [_acc(r["tflite"], sets) for r in qat]
    out = {"start": {**row, **_summary([acc["start"][1:]]), "selection_accuracy": acc["start"][0],
                     "note": "bench/optimize.py's net (8 epochs, Adam lr 1e-3): under-trained, not the fp32 reference"},
           "fp32": {**row, **_summary([acc["fp32"][1:]]), "selection_accuracy": acc["fp32"][0],
                    "trained": f"the 8-epoch net + {best} epochs (AdamW, cosine from lr {FP32_LR:g}, cross-entropy)",
                    "selection_by_extra_epochs": sel},
           "ptq": {**row, **_summary([acc["ptq"][1:]]), "selection_accuracy": acc["ptq"][0],
                   "calibration": "minmax, per-channel weights, 128 images", "of": "the converged fp32 model"},
           "qat": {**row, **_summary([r[1:] for r in ort_runs]),
                   "selection_accuracy": round(float(np.mean([r[0] for r in ort_runs])), 2),
                   "per_seed": [r[1:] for r in ort_runs], "seeds": seeds, "epochs": epochs, "lr": lr, "runtime": "onnxruntime",
                   "fine_tune": "cross-entropy, 4000 training images, from the converged fp32 model",
                   "litert": {**_summary([r[1:] for r in lite_runs]),
                              "selection_accuracy": round(float(np.mean([r[0] for r in lite_runs])), 2),
                              "per_seed": [r[1:] for r in lite_runs],
                              "max_output_diff_lsb_vs_onnxruntime": max(lsb_diff(r, report) for r in qat),
                              "export": "sdk.compress.qat_tflite.qdq_to_tflite (the QAT grid, no recalibration)"}},
           "fp32_finetuned": {**_summary([acc["ctl"][1:]]), "selection_accuracy": acc["ctl"][0],
                              "note": "control: the converged fp32 model fine-tuned exactly as QAT (seed 0) without "
                                      "fake quantization"},
           "splits": {"selection": "bench/optimize.py evaluation set, seed 12, 1000 images",
                      "report": f"fresh sets, seeds {list(REPORT_SEEDS)}, 1000 images each"}}
    out["ptq"]["selection_drop_pts"] = round(acc["fp32"][0] - acc["ptq"][0], 2)
    out["files"] = {"fp32": str(fp32), "ptq": str(ptq), "qat": str(qat[0]["onnx"]), "qat_tflite": str(qat[0]["tflite"])}
    return out


def _train_fp32(net: Any, train: tuple[np.ndarray, np.ndarray], epochs: int, lr: float, work: Path, tag: str = "") -> Any:
    """A copy of ``net`` trained ``epochs`` more (cross-entropy; checkpointed, resumable)."""
    from sdk.compress import fit

    out = copy.deepcopy(net)
    return fit(out, train, epochs, lr, seed=0, checkpoint=work / f"finebars48_fp32ft{tag}_e{epochs}_lr{lr:g}_a0.pt",
               desc=f"fp32 finebars48{tag} +{epochs}")


def _qat_run(net: Any, train: tuple[np.ndarray, np.ndarray], xc: np.ndarray, seed: int, epochs: int, lr: float,
             work: Path) -> dict[str, Path]:
    from sdk.compress import fit
    from sdk.compress.qat import export_qdq, quantize_aware
    from sdk.compress.qat_tflite import qdq_to_tflite

    q = quantize_aware(net, xc)
    fit(q, train, epochs, lr, seed=seed, checkpoint=work / f"finebars48_qatconv_s{seed}_e{epochs}_lr{lr:g}.pt",
        desc=f"qat finebars48 s{seed}")
    onnx_path = export_qdq(q, work / f"finebars48.qat_s{seed}.onnx", xc[:1])
    return {"onnx": onnx_path, "tflite": qdq_to_tflite(onnx_path, work / f"finebars48.qat_s{seed}.int8.tflite")}


def lsb_diff(run: dict[str, Path], sets: list[tuple[np.ndarray, np.ndarray]]) -> int:
    """Largest difference between the ONNX Runtime and LiteRT int8 outputs, in steps of the output scale."""
    from ai_edge_litert.interpreter import Interpreter

    from sdk.optimize.data import Dataset
    from sdk.optimize.measure import predict_outputs

    scale, zp = Interpreter(model_path=str(run["tflite"])).get_output_details()[0]["quantization"]
    worst = 0
    for x, y in sets:
        a, b = (np.round(np.asarray(predict_outputs(run[k], Dataset(x, y))[0]) / scale) + zp for k in ("onnx", "tflite"))
        worst = max(worst, int(np.abs(a - b).max()))
    return worst
