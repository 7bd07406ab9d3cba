"""Detection and classification scores (sensitivity = recall, +P = positive predictivity)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def ratio(a: float, b: float) -> float | None:
    return float(a / b) if b else None


def class_metrics(y: np.ndarray, pred: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Per-class Se/+P, accuracy and the confusion matrix (rows = truth, columns = prediction)."""
    k = len(classes)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (np.asarray(y, np.int64), np.asarray(pred, np.int64)), 1)
    out: dict[str, Any] = {}
    for i, c in enumerate(classes):
        out[c] = {"se": ratio(cm[i, i], cm[i].sum()), "ppv": ratio(cm[i, i], cm[:, i].sum()),
                  "n": int(cm[i].sum())}
    out["accuracy"] = ratio(np.trace(cm), cm.sum())
    out["confusion"] = {"classes": list(classes), "matrix": cm.tolist()}
    return out


def qrs_metrics(tp: int, fn: int, fp: int) -> dict[str, Any]:
    return {"se": ratio(tp, tp + fn), "ppv": ratio(tp, tp + fp), "tp": tp, "fn": fn, "fp": fp}
