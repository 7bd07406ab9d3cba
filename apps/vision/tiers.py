"""Tiers of Ember's detector from its fp32 ONNX export: fp32/int8 for ONNX Runtime and LiteRT via
the SDK's ``optimize``, the detection manifest (input/letterbox, decoder, labels), and each tier's
mAP@0.5 on held-out training images (``dev``; the val split stays for reporting)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from apps.vision.data import CLASSES, load_folder

TIERS = ("fp32/onnxruntime", "int8/onnxruntime", "fp32/litert", "int8/litert")
SCORE_THRESHOLD = 0.3


def manifest_fields(size: int) -> tuple[dict, dict]:
    inp = {"name": "image", "shape": [1, 3, size, size], "layout": "NCHW", "dtype": "float32", "color": "RGB",
           "letterbox": {"pad": 114, "center": True}}
    out = {"decoder": "yolov8", "names": ["boxes", "scores"], "score_threshold": SCORE_THRESHOLD,
           "iou_threshold": 0.5, "max_detections": 100}
    return inp, out


def calibration(folders: list[Path], size: int, n: int = 96, seed: int = 0) -> np.ndarray:
    """``n`` letterboxed training images, as the app feeds them."""
    import cv2

    from sdk.detect import Preprocess

    prep = Preprocess(manifest_fields(size)[0])
    paths = [s.path for f in folders for s in load_folder(f)]
    pick = np.random.default_rng(seed).choice(len(paths), min(n, len(paths)), replace=False)
    return np.concatenate([prep(cv2.imread(str(paths[i])))[0] for i in pick])


def make_tiers(export_dir: Path, out: Path, train_folder: Path, dev: list | None = None) -> Path:
    """Build ``out`` (replaced) from ``export_dir/fp32.onnx``; returns the folder."""
    import onnxruntime as ort

    from sdk.models.manifest import Manifest
    from sdk.optimize import optimize
    from sdk.optimize.data import Dataset

    info = json.loads((export_dir / "train.json").read_text())
    size = int(info["cfg"]["size"])
    folders = [train_folder, train_folder.parent / "unlabeled", train_folder.parents[1] / "detection_extra" / "trafficvision"]
    x = calibration([f for f in folders if f.is_dir()], size)
    sess = ort.InferenceSession(str(export_dir / "fp32.onnx"), providers=["CPUExecutionProvider"])
    # both outputs, flattened and concatenated per image, as sdk.optimize scores several outputs
    y = np.stack([np.concatenate([o.reshape(-1) for o in sess.run(None, {"image": x[i:i + 1]})])
                  for i in range(len(x))])
    tmp = out.parent / (out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    # the optimizer's own score: R² of each tier's outputs against fp32's (mAP is added below)
    evalset = Dataset(x[:16], y[:16], "calibration images")
    optimize(export_dir / "fp32.onnx", calib=(x, None), evalset=evalset, out=tmp, task="regression",
             name="ember-detector", labels=list(CLASSES), tiers=TIERS, report=False)
    m = Manifest.load(tmp)
    m.input, m.output = manifest_fields(size)
    m.labels = list(CLASSES)
    m.task = "detection"
    m.save(tmp)
    shutil.copyfile(export_dir / "train.json", tmp / "train.json")
    if dev:
        record_dev_map(tmp, dev)
        embed_profile(tmp, [s.path for s in dev])
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def record_dev_map(folder: Path, dev: list) -> None:
    """Each tier's mAP@0.5 (percent) on held-out training images as the manifest's ``accuracy``, and
    the score threshold with the best F1 on them (fp32) as the model's default threshold."""
    from apps.vision.evaluate import best_threshold, predict
    from sdk.detect import Detector
    from sdk.detect.metrics import evaluate_map
    from sdk.device import device_class
    from sdk.models.manifest import Manifest

    m = Manifest.load(folder)
    for v in m.variants:
        with Detector.from_folder(folder, tier=v.tier, backend=v.backend) as det:
            results = predict(det, dev)
        metrics = dict(v.metrics_for(device_class()) or {})
        metrics["accuracy"] = round(100 * evaluate_map(results, CLASSES)["map50"], 2)
        m.set_metrics(v.tier, v.backend, device_class(), metrics)
        if v.key == ("fp32", "onnxruntime"):
            threshold, f1 = best_threshold(results, len(CLASSES))
            m.output = {**m.output, "score_threshold": threshold, "threshold_f1_dev": round(f1, 4)}
    m.save(folder)


def embed_profile(folder: Path, images: list[Path]) -> None:
    """The drift reference profile (image statistics, class frequencies, confidences) in the manifest."""
    import cv2

    from sdk.detect import Detector
    from sdk.telemetry import build_reference_profile, embed_in_manifest

    frames = [cv2.imread(str(p)) for p in images]
    with Detector.from_folder(folder, tier="fp32") as det:
        profile = build_reference_profile(frames, "image", lambda f: {"detections": det.detect(f)},
                                          labels=list(CLASSES))
    embed_in_manifest(profile, folder)
