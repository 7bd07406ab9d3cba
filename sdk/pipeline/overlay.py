"""Drawing pipeline results on frames: the default overlay of ``VideoSink`` and ``DisplaySink``."""

from __future__ import annotations

from typing import Any

import numpy as np

from sdk.errors import PipelineError


def as_bgr_frame(data: Any, label: str) -> np.ndarray:
    """A writable H×W×3 uint8 copy of ``data`` (gray and BGRA are converted); clear error otherwise."""
    arr = np.asarray(data)
    if arr.ndim == 2 and arr.dtype == np.uint8:  # gray; a 2-D float block is audio/sensor samples
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, :3]
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise PipelineError(label, f"needs video frames (H×W×3 BGR), got an array of shape {np.shape(data)} "
                            "(use JsonlSink or CallbackSink for audio and sensor sources)")
    if arr.dtype != np.uint8:
        scale = 255.0 if arr.dtype.kind == "f" and arr.size and float(np.nanmax(arr)) <= 1.0 else 1.0
        arr = np.clip(np.nan_to_num(arr.astype(np.float32) * scale), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr).copy() if arr is data else np.ascontiguousarray(arr)


def describe_value(value: Any, max_len: int = 60) -> str:
    """Short text for a result: ``label score`` for a classification dict, other dicts as ``k=v``,
    score vectors as ``#argmax p=max``."""
    if isinstance(value, dict) and "label" in value:  # a classification result (see classify.TopK)
        score = value.get("score")
        text = f"{value['label']}" + (f" {float(score):.2f}" if score is not None else "")
    elif isinstance(value, dict):
        text = " ".join(f"{k}={_short(v)}" for k, v in value.items())
    elif isinstance(value, (np.ndarray, list, tuple)) and np.size(value) > 1:
        arr = np.asarray(value, dtype=np.float64).ravel() if _numeric(value) else None
        text = f"#{int(arr.argmax())} p={arr.max():.2f}" if arr is not None else _short(value)
    else:
        text = _short(value)
    return text if len(text) <= max_len else text[: max_len - 3] + "..."


def _numeric(value: Any) -> bool:
    try:
        return np.asarray(value).dtype.kind in "fiub"
    except (ValueError, TypeError):
        return False


def _short(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.3g}"
    if isinstance(v, np.ndarray):
        return f"array{list(v.shape)}"
    return str(v)


def draw_overlay(frame: np.ndarray, packet: Any) -> np.ndarray:
    """Write ``packet.value`` and the item's seq and end-to-end latency at the top left of ``frame``."""
    import cv2

    h = frame.shape[0]
    scale = max(0.35, min(1.0, h / 480.0))
    thick = 1 if scale < 0.7 else 2
    lines = [describe_value(packet.value), f"#{packet.item.seq} {packet.latency_ms:.1f} ms"]
    y = int(18 * scale) + 4
    for text in lines:
        cv2.putText(frame, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
        cv2.putText(frame, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 255, 0), thick, cv2.LINE_AA)
        y += int(22 * scale) + 4
    return frame
