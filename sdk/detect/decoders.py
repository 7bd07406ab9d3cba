"""Decoders: raw detector outputs -> boxes in model-input pixels, scores and class ids.

One function per output family, all with the same signature
``decode(outputs, input_hw, score_threshold) -> Raw`` (before NMS):

- ``yolox``: ``[1, N, 5 + C]`` raw grid outputs (offsets / log sizes per cell over strides 8, 16, 32);
- ``yolov5``: ``[1, N, 5 + C]`` with cx, cy, w, h in pixels, objectness, class scores;
- ``yolov8``: ``[1, 4 + C, N]`` (or ``[1, N, 4 + C]``) cx, cy, w, h in pixels then class scores, or the
  boxes ``[1, N, 4]`` and the scores ``[1, N, C]`` (or ``[1, 4, N]`` and ``[1, C, N]``) as two outputs
  (Ember's own detector: int8 then gives pixels and scores their own scales);
- ``ssd``: TFLite_Detection_PostProcess's four outputs (boxes ``[1, N, 4]`` as normalised
  ymin, xmin, ymax, xmax; classes; scores; count);
- ``centernet``: heat maps ``[1, C, H, W]`` (sigmoid applied) and l, t, r, b distances in pixels
  ``[1, 4, H, W]``, as two outputs or concatenated in one ``[1, C + 4, H, W]`` (Ember's own detector).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sdk.errors import ModelError


@dataclass
class Raw:
    boxes: np.ndarray  # [N, 4] x1 y1 x2 y2 in model-input pixels
    scores: np.ndarray  # [N]
    classes: np.ndarray  # [N] int

    @staticmethod
    def empty() -> Raw:
        return Raw(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def _xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    half = xywh[:, 2:4] / 2
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1).astype(np.float32)


def _pick(boxes: np.ndarray, cls_scores: np.ndarray, threshold: float) -> Raw:
    classes = cls_scores.argmax(axis=1)
    scores = cls_scores[np.arange(len(classes)), classes]
    keep = scores >= threshold
    return Raw(boxes[keep].astype(np.float32), scores[keep].astype(np.float32), classes[keep].astype(np.int64))


def _one(outputs: Sequence[np.ndarray], name: str, ndim: int) -> np.ndarray:
    out = np.asarray(outputs[0], dtype=np.float32)
    if out.ndim == ndim + 1 and out.shape[0] == 1:
        out = out[0]
    if out.ndim != ndim:
        raise ModelError(f"the {name} decoder expects one output of {ndim + 1} dims with batch 1, "
                         f"got shape {list(np.shape(outputs[0]))}: choose another --decoder")
    return out


def yolox_grid(input_hw: tuple[int, int], strides: Sequence[int] = (8, 16, 32)) -> tuple[np.ndarray, np.ndarray]:
    """Cell origins ``[N, 2]`` and strides ``[N, 1]`` in YOLOX's output order."""
    grids, steps = [], []
    for s in strides:
        h, w = input_hw[0] // s, input_hw[1] // s
        ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        grids.append(np.stack([xs, ys], axis=-1).reshape(-1, 2))
        steps.append(np.full((h * w, 1), s))
    return np.concatenate(grids).astype(np.float32), np.concatenate(steps).astype(np.float32)


def decode_yolox(outputs: Sequence[np.ndarray], input_hw: tuple[int, int], score_threshold: float) -> Raw:
    out = _one(outputs, "yolox", 2)
    grid, stride = yolox_grid(input_hw)
    if out.shape[0] != grid.shape[0] or out.shape[1] < 6:
        raise ModelError(f"yolox output {list(out.shape)} does not match a {input_hw[0]}x{input_hw[1]} input "
                         f"({grid.shape[0]} cells over strides 8/16/32, 5 + classes values each)")
    xy = (out[:, :2] + grid) * stride
    wh = np.exp(np.minimum(out[:, 2:4], 20.0)) * stride
    cls = out[:, 4:5] * out[:, 5:]
    return _pick(_xywh_to_xyxy(np.concatenate([xy, wh], axis=1)), cls, score_threshold)


def decode_yolov5(outputs: Sequence[np.ndarray], input_hw: tuple[int, int], score_threshold: float) -> Raw:
    out = _one(outputs, "yolov5", 2)
    if out.shape[1] < 6:
        raise ModelError(f"yolov5 output {list(out.shape)}: expected [N, 5 + classes]")
    return _pick(_xywh_to_xyxy(out[:, :4]), out[:, 4:5] * out[:, 5:], score_threshold)


def decode_yolov8(outputs: Sequence[np.ndarray], input_hw: tuple[int, int], score_threshold: float) -> Raw:
    if len(outputs) == 2:  # boxes [1, N, 4] and scores [1, N, C]
        boxes, scores = (np.asarray(o, np.float32) for o in outputs)
        if boxes.shape[-1] != 4 and scores.shape[-1] == 4:  # scores came first
            boxes, scores = scores, boxes
        if boxes.ndim == 3 and boxes.shape[1] == 4 and boxes.shape[2] != 4:  # [1, 4, N] + [1, C, N]
            boxes, scores = boxes.transpose(0, 2, 1), scores.transpose(0, 2, 1)
        elif boxes.ndim == 3 and scores.ndim == 3 and scores.shape[1] == 4 and scores.shape[2] != 4:
            boxes, scores = scores.transpose(0, 2, 1), boxes.transpose(0, 2, 1)
        if boxes.ndim != 3 or scores.ndim != 3 or boxes.shape[1] != scores.shape[1] or boxes.shape[2] != 4:
            raise ModelError(f"yolov8 with two outputs expects boxes [1, N, 4] and scores [1, N, C], got "
                             f"{list(boxes.shape)} and {list(scores.shape)}")
        outputs = [np.concatenate([boxes, scores], axis=2)]
    out = _one(outputs, "yolov8", 2)
    if out.shape[0] < out.shape[1]:  # [4 + C, N] as exported by ultralytics
        out = out.T
    if out.shape[1] < 5:
        raise ModelError(f"yolov8 output {list(out.shape)}: expected [4 + classes, N]")
    return _pick(_xywh_to_xyxy(out[:, :4]), out[:, 4:], score_threshold)


def decode_ssd(outputs: Sequence[np.ndarray], input_hw: tuple[int, int], score_threshold: float) -> Raw:
    if len(outputs) < 3:
        raise ModelError(f"the ssd decoder expects TFLite_Detection_PostProcess's 4 outputs, got {len(outputs)}")
    arrays = [np.asarray(o, dtype=np.float32) for o in outputs]
    boxes = next((a for a in arrays if a.ndim == 3 and a.shape[-1] == 4), None)
    flat = [a.reshape(-1) for a in arrays if a.ndim == 2]
    count = next((a.reshape(-1) for a in arrays if a.size == 1), None)
    if boxes is None or len(flat) < 2:
        raise ModelError("ssd outputs must be boxes [1, N, 4], classes [1, N], scores [1, N], count [1]")
    classes, scores = flat[0], flat[1]
    if np.all(scores == np.round(scores)) and not np.all(classes == np.round(classes)):
        classes, scores = scores, classes  # some exporters swap the order
    n = int(count[0]) if count is not None else len(scores)
    h, w = input_hw
    yxyx = boxes[0, :n]
    xyxy = np.stack([yxyx[:, 1] * w, yxyx[:, 0] * h, yxyx[:, 3] * w, yxyx[:, 2] * h], axis=1)
    keep = scores[:n] >= score_threshold
    return Raw(xyxy[keep].astype(np.float32), scores[:n][keep], classes[:n][keep].astype(np.int64))


def _peaks(heat: np.ndarray) -> np.ndarray:
    """Mask of 3x3 local maxima of ``[C, H, W]`` heat maps."""
    padded = np.pad(heat, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    h, w = heat.shape[1:]
    best = np.max([padded[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=0)
    return heat >= best


def decode_centernet(outputs: Sequence[np.ndarray], input_hw: tuple[int, int], score_threshold: float) -> Raw:
    if len(outputs) == 2:
        outputs = [np.concatenate([np.asarray(o, np.float32) for o in outputs], axis=-3)]
    out = _one(outputs, "centernet", 3)
    classes_n = out.shape[0] - 4
    if classes_n < 1:
        raise ModelError(f"centernet output {list(out.shape)}: expected [classes + 4, H, W]")
    heat, ltrb = out[:classes_n], out[classes_n:]
    stride_y, stride_x = input_hw[0] / out.shape[1], input_hw[1] / out.shape[2]
    c, ys, xs = np.nonzero(_peaks(heat) & (heat >= score_threshold))
    cx, cy = (xs + 0.5) * stride_x, (ys + 0.5) * stride_y
    d = ltrb[:, ys, xs]
    boxes = np.stack([cx - d[0], cy - d[1], cx + d[2], cy + d[3]], axis=1).astype(np.float32)
    return Raw(boxes.reshape(-1, 4), heat[c, ys, xs].astype(np.float32), c.astype(np.int64))


DECODERS: dict[str, Callable[[Sequence[np.ndarray], tuple[int, int], float], Raw]] = {
    "yolox": decode_yolox, "yolov5": decode_yolov5, "yolov8": decode_yolov8,
    "ssd": decode_ssd, "centernet": decode_centernet,
}


def get_decoder(name: str) -> Callable[[Sequence[np.ndarray], tuple[int, int], float], Raw]:
    if name not in DECODERS:
        raise ModelError(f"unknown decoder {name!r}: choose one of {', '.join(DECODERS)}")
    return DECODERS[name]
