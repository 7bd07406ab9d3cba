"""``ember eval vision --data DIR``: mAP@0.5 and mAP@0.5:0.95 of any detector on a folder laid out
like ``detection/val`` (``annotations.json`` + ``images/``), honouring each image's
``labeled_classes``; PR curves with ``--plot``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from apps.vision.data import CLASSES, Sample
from sdk.detect.metrics import ImageResult, class_pr, evaluate_map
from sdk.errors import EmberError

EVAL_THRESHOLD = 0.01  # keep low-score detections: AP integrates over the whole PR curve


def _read(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise EmberError(f"{path}: cannot read the image (missing or corrupt)")
    return img


def predict(detector: Any, samples: list[Sample], classes: tuple[str, ...] = CLASSES,
            progress: bool = False) -> list[ImageResult]:
    """Run ``detector`` (``detect(frame, threshold)``, labels by name) over ``samples``."""
    index = {name: i for i, name in enumerate(classes)}
    results = []
    it = samples
    if progress:
        from tqdm import tqdm
        it = tqdm(samples, desc="eval", leave=False)
    for s in it:
        dets = [d for d in detector.detect(_read(s.path), EVAL_THRESHOLD) if d.label in index]
        results.append(ImageResult(
            s.boxes, s.classes, np.array([d.box for d in dets], np.float32).reshape(-1, 4),
            np.array([d.score for d in dets], np.float32), np.array([index[d.label] for d in dets], np.int64),
            s.labeled))
    return results


def evaluate_detector(detector: Any, samples: list[Sample], classes: tuple[str, ...] = CLASSES,
                      plot: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    if not samples:
        raise EmberError("no images to evaluate")
    results = predict(detector, samples, classes, progress)
    out = evaluate_map(results, classes)
    out["images"] = len(samples)
    if plot:
        plot_pr(results, classes, Path(plot))
    return out


def plot_pr(results: list[ImageResult], classes: tuple[str, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    for c, name in enumerate(classes):
        precision, recall, n_gt = class_pr(results, c, 0.5)
        if n_gt:
            ax.plot(recall, precision, label=f"{name} ({n_gt})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="PR curves, IoU 0.5")
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def best_threshold(results: list[ImageResult], n_classes: int, grid: tuple[float, ...] = tuple(
        np.round(np.arange(0.1, 0.65, 0.05), 2))) -> tuple[float, float]:
    """The score threshold with the best F1 (IoU 0.5, all classes pooled) and that F1."""
    from sdk.detect.metrics import _match

    best = (0.3, -1.0)
    for t in grid:
        tp = fp = n_gt = 0
        for r in results:
            keep = r.scores >= t
            cut = ImageResult(r.gt_boxes, r.gt_classes, r.boxes[keep], r.scores[keep], r.classes[keep], r.labeled)
            for c in range(n_classes):
                _, hits, g = _match(cut, c, 0.5)
                tp, fp, n_gt = tp + int(hits.sum()), fp + int((~hits).sum()), n_gt + g
        f1 = 2 * tp / max(2 * tp + fp + (n_gt - tp), 1)
        if f1 > best[1]:
            best = (float(t), f1)
    return best
