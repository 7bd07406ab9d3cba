"""Box geometry shared by every detector: letterboxing, IoU and class-aware NMS.

Boxes are ``float32`` arrays of shape ``[N, 4]`` as ``x1, y1, x2, y2`` in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sdk.errors import EmberError


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into a model input: ``model = image * scale + (pad_x, pad_y)``."""

    scale: float
    pad_x: float
    pad_y: float
    width: int  # original image size
    height: int

    def to_image(self, boxes: np.ndarray) -> np.ndarray:
        """Map ``[N, 4]`` boxes from model-input pixels back to the original image, clipped to it."""
        out = np.asarray(boxes, dtype=np.float32).copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, self.width)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, self.height)
        return out

    def to_model(self, boxes: np.ndarray) -> np.ndarray:
        """Map ``[N, 4]`` boxes from original-image pixels into model-input pixels."""
        out = np.asarray(boxes, dtype=np.float32).copy()
        out[:, [0, 2]] = out[:, [0, 2]] * self.scale + self.pad_x
        out[:, [1, 3]] = out[:, [1, 3]] * self.scale + self.pad_y
        return out


def letterbox(image: np.ndarray, size: tuple[int, int], pad_value: int = 114,
              center: bool = True) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` (H x W x C, uint8) to fit ``size = (height, width)`` keeping its aspect ratio.

    The rest is filled with ``pad_value``; ``center=False`` pads only right/bottom (YOLOX's way).
    """
    import cv2

    if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise EmberError(f"cannot letterbox an image of shape {image.shape}: expected H x W x C with H, W > 0")
    h, w = image.shape[:2]
    th, tw = size
    scale = min(th / h, tw / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    pad_x = (tw - nw) / 2 if center else 0.0
    pad_y = (th - nh) / 2 if center else 0.0
    px, py = int(pad_x), int(pad_y)
    out = np.full((th, tw, image.shape[2]), pad_value, dtype=np.uint8)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    out[py:py + nh, px:px + nw] = cv2.resize(image, (nw, nh), interpolation=interp).reshape(nh, nw, -1)
    return out, Letterbox(scale=scale, pad_x=float(px), pad_y=float(py), width=w, height=h)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``[len(a), len(b)]`` of two sets of x1y1x2y2 boxes."""
    a = np.asarray(a, dtype=np.float32).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float32).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod((rb - lt).clip(0), axis=2)
    area_a = np.prod((a[:, 2:] - a[:, :2]).clip(0), axis=1)
    area_b = np.prod((b[:, 2:] - b[:, :2]).clip(0), axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, highest score first."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    boxes = np.asarray(boxes, dtype=np.float32)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        ious = box_iou(boxes[i:i + 1], boxes[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray,
                iou_threshold: float = 0.5, max_det: int = 300) -> np.ndarray:
    """Class-aware NMS: boxes of different classes never suppress each other."""
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if boxes.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    offset = (np.asarray(classes, dtype=np.float32) * (float(boxes.max()) + 1.0))[:, None]
    keep = nms(boxes + offset, scores, iou_threshold)
    return keep[:max_det]
