"""Detection accuracy: VOC-style all-point average precision per class, mAP@0.5 and mAP@0.5:0.95.

Images may be partially labeled: ``labeled`` lists the classes whose every instance is boxed in that
image. Detections (and ground truth) of other classes in that image are ignored, never counted as
false positives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdk.detect.boxes import box_iou


@dataclass
class ImageResult:
    gt_boxes: np.ndarray  # [G, 4]
    gt_classes: np.ndarray  # [G]
    boxes: np.ndarray  # [D, 4] detections
    scores: np.ndarray  # [D]
    classes: np.ndarray  # [D]
    labeled: set[int] | None = None  # None: every class is fully labeled


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP (area under the monotone precision envelope)."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    idx = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[idx + 1] - r[idx]) * p[idx + 1]))


def _match(res: ImageResult, c: int, iou_t: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Scores and true-positive flags of the class-``c`` detections in one image, and its GT count."""
    if res.labeled is not None and c not in res.labeled:
        return np.zeros(0), np.zeros(0, bool), 0
    gt = res.gt_boxes[res.gt_classes == c]
    m = res.classes == c
    boxes, scores = res.boxes[m], res.scores[m]
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    tp = np.zeros(len(scores), bool)
    if len(gt) and len(boxes):
        ious = box_iou(boxes, gt)
        used = np.zeros(len(gt), bool)
        for i in range(len(boxes)):
            j = int(np.argmax(np.where(used, -1.0, ious[i])))
            if not used[j] and ious[i, j] >= iou_t:
                used[j] = tp[i] = True
    return scores, tp, len(gt)


def class_pr(results: list[ImageResult], c: int, iou_t: float = 0.5) -> tuple[np.ndarray, np.ndarray, int]:
    """Precision and recall curves of class ``c`` over all images, and the number of GT boxes."""
    parts = [_match(r, c, iou_t) for r in results]
    n_gt = sum(p[2] for p in parts)
    scores = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
    tp = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, bool)
    order = np.argsort(-scores, kind="stable")
    ctp = np.cumsum(tp[order])
    recall = ctp / max(n_gt, 1)
    precision = ctp / np.arange(1, len(ctp) + 1)
    return precision, recall, n_gt


def evaluate_map(results: list[ImageResult], class_names: list[str] | tuple[str, ...]) -> dict:
    """``{"map50", "map50_95", "per_class": {name: {"ap50", "ap50_95", "gt"}}}``; classes without GT
    are reported with ``ap50 = None`` and left out of the means."""
    per_class: dict[str, dict] = {}
    thresholds = np.arange(0.5, 0.96, 0.05)
    for c, name in enumerate(class_names):
        aps = []
        n_gt = 0
        for t in thresholds:
            precision, recall, n_gt = class_pr(results, c, float(t))
            aps.append(average_precision(recall, precision) if n_gt else None)
        per_class[name] = {"ap50": aps[0], "ap50_95": float(np.mean(aps)) if n_gt else None, "gt": n_gt}
    valid = [v for v in per_class.values() if v["ap50"] is not None]
    return {
        "map50": float(np.mean([v["ap50"] for v in valid])) if valid else 0.0,
        "map50_95": float(np.mean([v["ap50_95"] for v in valid])) if valid else 0.0,
        "per_class": per_class,
    }


def mot_metrics(gt: list[dict[int, np.ndarray]], pred: list[dict[int, np.ndarray]], iou_t: float = 0.5) -> dict:
    """CLEAR-MOT over a sequence: per frame ``{object_id: box}`` for ground truth and tracker output.

    A ground-truth object keeps its previous tracker id while they still overlap (IoU >= ``iou_t``);
    the rest are matched greedily by IoU. ``mota = 1 - (misses + false positives + id switches) / gt``.
    """
    last: dict[int, int] = {}
    misses = fps = switches = matches = n_gt = 0
    for g, p in zip(gt, pred):
        n_gt += len(g)
        pairs: dict[int, int] = {}
        for gid, pid in last.items():
            if gid in g and pid in p and box_iou(g[gid][None], p[pid][None])[0, 0] >= iou_t:
                pairs[gid] = pid
        free_g = [k for k in g if k not in pairs]
        free_p = [k for k in p if k not in pairs.values()]
        if free_g and free_p:
            iou = box_iou(np.array([g[k] for k in free_g]), np.array([p[k] for k in free_p]))
            while iou.size and iou.max() >= iou_t:
                i, j = np.unravel_index(np.argmax(iou), iou.shape)
                pairs[free_g[i]] = free_p[j]
                iou[i, :] = -1
                iou[:, j] = -1
        for gid, pid in pairs.items():
            switches += gid in last and last[gid] != pid
            last[gid] = pid
        matches += len(pairs)
        misses += len(g) - len(pairs)
        fps += len(p) - len(pairs)
    return {"mota": 1 - (misses + fps + switches) / max(n_gt, 1), "id_switches": int(switches),
            "misses": int(misses), "false_positives": int(fps), "matches": int(matches), "gt": int(n_gt)}
