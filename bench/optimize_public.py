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
of the model). Latency: p50 at 1 thread, best of the toolchain's 5 interleaved rounds; the
targets also give each int8 tier's speed-up round by round (fp32 and the tier measured in the
same round), whose spread shows what the machine's load does to the ratio. Every tier
of ``ember optimize`` is built.

YOLOX-nano's plain int8 loses most of its mAP in its stem: the output of the first conv
(Focus → 208×208, pre-SiLU) spans ±110 and the SiLU output feeding the second conv spans
0–120 with a median of 0.02, so per-tensor int8 steps of ~0.5 wipe out the values that matter.
The ``int8-mixed`` tiers keep layers in float, chosen on the selection half of the evaluation
data (the other half is what every tier is scored on): by a per-layer sensitivity scan for
models with ≤ 25 weighted layers; for bigger ones by a scan of blocks of 8 layers, then layer
by layer inside the two most sensitive blocks, then one more float layer at a time, and finally
each float layer the budget can spare is handed back to int8. ``int8-mixed/litert`` keeps the
same layers float inside the LiteRT int8 model. int8 activations are uint8 (ONNX Runtime's x86
kernels fuse only U8S8 QDQ groups); the fp16 tier keeps nodes whose values on the calibration
data leave fp16's range in float32.

    .venv/bin/python bench/optimize_public.py        # writes bench/results/optimize_public.json
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import REPO, load, parser, write_result

from sdk.optimize import optimize
from sdk.optimize.data import Dataset
from sdk.optimize.quantize import quantizable_nodes
from sdk.optimize.tiers import ALL_TIERS

SHARED = REPO.parent / "shared"
MODELS, DATA = SHARED / "models", SHARED / "data"
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
    tiers = list(ALL_TIERS)
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
                     "agreement": t.extra.get("agreement"), "excluded_nodes": t.extra.get("excluded_nodes"),
                     "latency_rounds_ms": t.extra.get("latency_rounds_ms"),
                     "selection": t.extra.get("selection")})
    return {"name": spec["name"], "file": Path(spec["model"]).name, "task": spec["task"], "score_metric": spec["score"],
            "fp32_score": res.fp32_score, "prepare": res.prepare, "weighted_layers": layers,
            "mixed_search": None if res.mixed is None else {"excluded": res.mixed.excluded, "steps": res.mixed.steps,
                                                            "selection": res.mixed.selection},
            "seconds": round(time.time() - t0, 1), "tiers": rows}


def _paired(base: list[float] | None, tier: list[float] | None) -> dict[str, Any] | None:
    """fp32 ÷ tier latency within each interleaved round (the spread under the machine's load)."""
    if not base or not tier:
        return None
    ratios = [b / t for b, t in zip(base, tier)]
    return {"median": float(np.median(ratios)), "min": min(ratios), "max": max(ratios), "rounds": ratios}


def targets(models: list[dict[str, Any]]) -> dict[str, Any]:
    built = {m["name"]: [t["tier"] for t in m["tiers"] if t["status"] not in ("ok", "skipped")] for m in models}
    yolox = next(m for m in models if m["name"] == "yolox_nano")
    int8 = [t for t in yolox["tiers"] if t["tier"].startswith("int8") and t["status"] == "ok"]
    fp32 = {t["tier"]: t for t in yolox["tiers"]}
    same = {t["tier"]: "fp32/" + t["tier"].split("/")[1] for t in int8}
    best = [{"tier": t["tier"], "map_drop_pts": yolox["fp32_score"] - t["score"],
             "speedup_vs_fp32_same_backend": fp32[same[t["tier"]]]["latency_ms"] / t["latency_ms"]
             if fp32.get(same[t["tier"]], {}).get("latency_ms") else None,
             "speedup_per_round": _paired(fp32.get(same[t["tier"]], {}).get("latency_rounds_ms"),
                                          t["latency_rounds_ms"])} for t in int8]
    return {"every_tier_builds": {"met": not any(built.values()), "not_built": {k: v for k, v in built.items() if v}},
            "yolox_int8_within_1pt_and_1.5x": {"met": any(b["map_drop_pts"] <= 1.0 and (b["speedup_vs_fp32_same_backend"]
                                                                                      or 0) >= 1.5 for b in best),
                                               "int8_tiers": best}}


def main() -> int:
    parser(__doc__).parse_args()
    if not (MODELS / "yolox_nano.onnx").is_file() or not DATA.is_dir():
        print(f"needs {MODELS} and {DATA}", file=sys.stderr)
        return 2
    before = load()
    with tempfile.TemporaryDirectory(prefix="ember-optimize-public-") as tmp:
        models = [run_one(s, Path(tmp)) for s in specs()]
    write_result("optimize_public", {"bench": "optimize_public", "threads": 1, "models": models,
                                     "targets": targets(models)}, before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
