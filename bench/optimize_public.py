"""``ember optimize`` on five public models nobody here wrote (``../shared/models``): YOLOX-nano
(opset 11), openWakeWord's speech embedding and mel front end (opset 13, dynamic batch/length),
the PP-OCRv4 text detector (opset 12, dynamic H/W) and the PP-OCR direction classifier (opset 11).

Data (``../shared/data``; calibration and evaluation never share an image/speaker):

* YOLOX-nano: calibration = 64 ``detection/train`` images, evaluation = ``detection/val`` (114
  images), letterboxed to 416×416 (BGR 0–255, pad 114); score = mAP@0.5 on the six labelled
  classes (``labeled_classes`` honoured), decoded with the built-in YOLOX decoder.
* mel front end: 1 s Speech Commands clips (int16 scale), batch 1 × 16000 samples.
* speech embedding: the same clips through the fp32 mel model (``mel / 10 + 2`` as openWakeWord
  feeds it), the first 76 frames.
* PP-OCR det / cls: ``detection/train`` photos with words drawn on them (OpenCV Hershey fonts;
  half of the classifier crops upside down), ImageNet / ±1 normalization as PaddleOCR does.

Scores without labels are 100·R² of each tier's outputs against the fp32 outputs (every output
of the model). Latency: p50 at 1 thread, best of the toolchain's interleaved rounds. The
``int8-mixed`` tier (a per-layer sensitivity scan) runs on the models with ≤ 25 weighted layers;
on the others one scan costs one int8 quantization plus one evaluation per layer (62–113 layers):
run ``ember optimize`` with ``--tiers int8-mixed/onnxruntime`` for those separately.

YOLOX-nano's plain int8 loses most of its mAP: its stem (Focus + the first convs, 208×208,
SiLU) has activations spanning ±95 while the values that matter are near 0, so per-tensor int8
steps of ~0.75 wipe them out. ``yolox_stem_float`` keeps the first *k* weighted layers (and the
ops up to the next weighted layer) in float in the LiteRT int8 model (``onnx_to_tflite(...,
float_nodes=...)``); *k* is chosen on 100 ``detection/train`` images that are not calibration
images (the smallest *k* within 1 point of fp32 there), then scored on ``detection/val`` and timed
against fp32/int8 LiteRT in interleaved rounds.

    .venv/bin/python bench/optimize_public.py        # writes bench/results/optimize_public.json
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import REPO, load, write_result

from sdk.optimize import optimize
from sdk.optimize.data import Dataset
from sdk.optimize.quantize import quantizable_nodes
from sdk.optimize.tiers import ALL_TIERS

SHARED = REPO.parent / "shared"
MODELS, DATA = SHARED / "models", SHARED / "data"
MIXED_MAX_LAYERS = 25
WORDS = ("ember", "stop", "EXIT", "Route 66", "open", "PUSH", "cafe", "No parking", "42", "station")


def _clips(n: int, offset: int) -> np.ndarray:
    """``n`` 1-s clips at int16 scale, speakers chosen by hash so offsets never share a speaker."""
    import soundfile as sf

    files = sorted((DATA / "speech_commands").glob("*/*.flac"), key=lambda p: (p.name.split("_")[0], p.parent.name))
    speakers = sorted({f.name.split("_")[0] for f in files})
    chosen = set(speakers[offset::4])
    out = []
    for f in (f for f in files if f.name.split("_")[0] in chosen):
        a, _ = sf.read(f, dtype="float32")
        out.append(np.pad(a, (0, max(0, 16000 - len(a))))[:16000] * 32767.0)
        if len(out) == n:
            break
    return np.stack(out).astype(np.float32)


def _mel_frames(clips: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    s = ort.InferenceSession(str(MODELS / "public_onnx" / "melspectrogram.onnx"), providers=["CPUExecutionProvider"])
    mel = [s.run(None, {"input": c[None]})[0][0, 0] for c in clips]  # [frames, 32]
    return np.stack([m[:76, :, None] / 10.0 + 2.0 for m in mel]).astype(np.float32)  # [n, 76, 32, 1]


def _photos(n: int, offset: int, hw: tuple[int, int], text: bool, flip_half: bool = False) -> np.ndarray:
    import cv2

    files = sorted((DATA / "detection" / "train" / "images").glob("*.jpg"))[offset:offset + n]
    rng = np.random.default_rng(offset)
    out = []
    for i, f in enumerate(files):
        img = cv2.resize(cv2.imread(str(f)), (hw[1], hw[0]))
        for _ in range(int(rng.integers(1, 4)) if text else 0):
            scale = hw[0] / 60 if hw[0] < 100 else float(rng.uniform(0.6, 1.4))
            org = (int(rng.integers(0, hw[1] // 3)), int(rng.integers(hw[0] // 2, hw[0] - 4)) if hw[0] < 100
                   else int(rng.integers(30, hw[0] - 10)))
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            cv2.putText(img, str(rng.choice(WORDS)), org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 2, cv2.LINE_AA)
        if flip_half and i % 2:
            img = img[::-1, ::-1]
        out.append(img.astype(np.float32) / 255.0)
    x = np.stack(out)
    if hw[0] < 100:  # classifier: (x - 0.5) / 0.5
        x = (x - 0.5) / 0.5
    else:  # detector: ImageNet mean/std
        x = (x - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)).astype(np.float32)


def specs() -> list[dict[str, Any]]:
    clips_cal, clips_ev = _clips(64, 0), _clips(200, 1)
    po = MODELS / "public_onnx"
    return [
        {"name": "yolox_nano", "model": MODELS / "yolox_nano.onnx", "task": "detection",
         "calib": DATA / "detection" / "train", "eval": DATA / "detection" / "val", "calib_limit": 64,
         "score": "mAP@0.5 (%) on detection/val"},
        {"name": "speech_embedding", "model": po / "embedding_model.onnx", "task": "regression",
         "calib": Dataset(_mel_frames(clips_cal)), "eval": Dataset(_mel_frames(clips_ev)),
         "score": "100·R² vs fp32 outputs"},
        {"name": "melspectrogram", "model": po / "melspectrogram.onnx", "task": "regression",
         "calib": Dataset(clips_cal), "eval": Dataset(clips_ev[:100]), "score": "100·R² vs fp32 outputs"},
        {"name": "ppocrv4_det", "model": po / "ch_PP-OCRv4_det_infer.onnx", "task": "regression",
         "calib": Dataset(_photos(32, 0, (320, 320), True)), "eval": Dataset(_photos(40, 100, (320, 320), True)),
         "input_shape": "x=1x3x320x320", "score": "100·R² vs fp32 outputs"},
        {"name": "ppocr_cls", "model": po / "ch_ppocr_mobile_v2.0_cls_infer.onnx", "task": "regression",
         "calib": Dataset(_photos(64, 200, (48, 192), True, True)),
         "eval": Dataset(_photos(200, 300, (48, 192), True, True)), "score": "100·R² vs fp32 outputs"},
    ]


def run_one(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    layers = len(quantizable_nodes(spec["model"]))
    tiers = [t for t in ALL_TIERS if t != "int8-mixed/onnxruntime" or layers <= MIXED_MAX_LAYERS]
    t0 = time.time()
    res = optimize(spec["model"], spec["calib"], spec["eval"], out / spec["name"], task=spec["task"],
                   name=spec["name"], tiers=tiers, calib_limit=spec.get("calib_limit", 256), eval_limit=200,
                   input_shape=spec.get("input_shape"), device="bench", report=True)
    base = res.tier("fp32/onnxruntime").latency_ms_p50
    rows = []
    for t in res.tiers:
        rows.append({"tier": t.key, "status": t.status, "reason": t.reason, "score": t.score, "drop_pts": t.drop_pts,
                     "latency_ms": t.latency_ms_p50, "speedup_vs_fp32_onnx": (base / t.latency_ms_p50)
                     if base and t.latency_ms_p50 else None, "size_bytes": t.size_bytes,
                     "agreement": t.extra.get("agreement"), "excluded_nodes": t.extra.get("excluded_nodes")})
    if layers > MIXED_MAX_LAYERS:
        rows.append({"tier": "int8-mixed/onnxruntime", "status": "not run", "reason":
                     f"{layers} weighted layers: the sensitivity scan is left out of this bench", "score": None,
                     "latency_ms": None, "size_bytes": None})
    return {"name": spec["name"], "file": Path(spec["model"]).name, "task": spec["task"], "score_metric": spec["score"],
            "fp32_score": res.fp32_score, "prepare": res.prepare, "weighted_layers": layers,
            "seconds": round(time.time() - t0, 1), "tiers": rows}


STEM_CANDIDATES = (1, 2, 3, 4, 6, 8)


def stem_prefix(fp32: Path, k: int) -> list[str]:
    """ONNX node names from the input up to (not including) the (k+1)-th weighted layer."""
    import onnx

    names, weighted = [], 0
    for n in onnx.load(str(fp32)).graph.node:
        weighted += n.op_type in ("Conv", "Gemm", "MatMul", "ConvTranspose")
        if weighted > k:
            break
        names.append(n.name)
    return names


def yolox_stem_float(folder: Path) -> dict[str, Any]:
    from sdk.optimize.detection import load_coco, load_images
    from sdk.optimize.measure import latency, predict, score
    from sdk.optimize.tflite_export import onnx_to_tflite
    from sdk.util.timing import interleave

    shape = [1, 3, 416, 416]
    fp32 = folder / "model.fp32.onnx"
    cal = load_images(DATA / "detection" / "train", shape, 64)
    sel_all = load_coco(DATA / "detection" / "train", shape)
    cal_names = {p.name for p in sorted((DATA / "detection" / "train" / "images").glob("*.jpg"))[:64]}
    names = [im["file_name"] for im in json.loads((DATA / "detection" / "train" / "annotations.json").read_text())
             ["images"]]
    keep = [i for i, n in enumerate(names) if n not in cal_names][:100]
    sel = Dataset(sel_all.x[keep], sel_all.y[keep], "detection/train selection")
    ev = load_coco(DATA / "detection" / "val", shape)
    sel_fp32 = score(predict(fp32, sel), sel.y, "detection")
    steps, chosen = [], None
    for k in STEM_CANDIDATES:
        path = folder / f"stem{k}.int8.tflite"
        onnx_to_tflite(fp32, path, int8=True, calibration=cal.samples(), float_nodes=stem_prefix(fp32, k))
        s_k = score(predict(path, sel), sel.y, "detection")
        steps.append({"float_weighted_layers": k, "selection_map": s_k, "selection_drop_pts": sel_fp32 - s_k})
        if sel_fp32 - s_k <= 1.0:
            chosen = k
            break
    chosen = chosen or max(steps, key=lambda st: st["selection_map"])["float_weighted_layers"]
    path = folder / f"stem{chosen}.int8.tflite"
    variants = {"fp32/litert": folder / "model.fp32.tflite", "int8/litert": folder / "model.int8.tflite",
                "int8-stem-float/litert": path}
    lat = interleave({k: (lambda p=p: latency(p, ev.x[:1], threads=1, min_time_s=0.5).p50_ms)
                      for k, p in variants.items()}, rounds=3)
    val = {k: score(predict(p, ev), ev.y, "detection") for k, p in variants.items()}
    return {"selection": {"images": len(sel), "fp32_map": sel_fp32, "steps": steps}, "chosen_k": chosen,
            "float_nodes": len(stem_prefix(fp32, chosen)), "size_bytes": path.stat().st_size,
            "val_map": val, "latency_ms_p50": {k: min(v) for k, v in lat.items()},
            "speedup_vs_fp32_litert": min(lat["fp32/litert"]) / min(lat["int8-stem-float/litert"])}


def targets(models: list[dict[str, Any]], stem: dict[str, Any] | None = None) -> dict[str, Any]:
    built = {m["name"]: [t["tier"] for t in m["tiers"] if t["status"] not in ("ok", "skipped")] for m in models}
    yolox = next(m for m in models if m["name"] == "yolox_nano")
    int8 = [t for t in yolox["tiers"] if t["tier"] in ("int8/onnxruntime", "int8/litert") and t["status"] == "ok"]
    fp32 = {t["tier"]: t for t in yolox["tiers"]}
    best = [{"tier": t["tier"], "map_drop_pts": yolox["fp32_score"] - t["score"],
             "speedup_vs_fp32_same_backend": fp32[t["tier"].replace("int8", "fp32")]["latency_ms"] / t["latency_ms"]
             if fp32.get(t["tier"].replace("int8", "fp32"), {}).get("latency_ms") else None} for t in int8]
    if stem is not None:
        best.append({"tier": "int8-stem-float/litert", "map_drop_pts": stem["val_map"]["fp32/litert"]
                     - stem["val_map"]["int8-stem-float/litert"],
                     "speedup_vs_fp32_same_backend": stem["speedup_vs_fp32_litert"]})
    return {"every_tier_builds": {"met": not any(built.values()), "not_built": {k: v for k, v in built.items() if v}},
            "yolox_int8_within_1pt_and_1.5x": {"met": any(b["map_drop_pts"] <= 1.0 and (b["speedup_vs_fp32_same_backend"]
                                                                                      or 0) >= 1.5 for b in best),
                                               "int8_tiers": best}}


def main() -> int:
    if not (MODELS / "yolox_nano.onnx").is_file() or not DATA.is_dir():
        print(f"needs {MODELS} and {DATA}", file=sys.stderr)
        return 2
    before = load()
    with tempfile.TemporaryDirectory(prefix="ember-optimize-public-") as tmp:
        models = [run_one(s, Path(tmp)) for s in specs()]
        stem = yolox_stem_float(Path(tmp) / "yolox_nano")
    write_result("optimize_public", {"bench": "optimize_public", "threads": 1, "models": models,
                                     "yolox_stem_float": stem, "targets": targets(models, stem)}, before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
