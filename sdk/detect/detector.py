"""``Detector``: image in, ``list[Detection]`` out, for any detection model folder.

    det = Detector.from_folder("apps/vision/model", tier="int8")
    for d in det.detect(cv2.imread("street.jpg")):
        print(d.label, d.score, d.box)

The manifest says how to feed and decode the model:

- ``input``: ``shape`` (NCHW or NHWC), ``color`` (``RGB`` or ``BGR``, default RGB), optional
  ``normalization`` ``{mean, std}`` on 0–255 pixels, ``letterbox`` ``{"pad": 114, "center": true}``;
- ``output``: ``decoder`` (see :mod:`sdk.detect.decoders`), ``score_threshold``, ``iou_threshold``,
  ``max_detections``, and ``classes``: the ids of the model's outputs to keep (e.g. a COCO model
  restricted to people and vehicles), labels come from the manifest ``labels``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdk.detect.boxes import Letterbox, batched_nms, letterbox
from sdk.detect.decoders import Raw, get_decoder
from sdk.errors import EmberError, ModelError


@dataclass
class Detection:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels
    score: float
    class_id: int
    label: str
    track_id: int | None = None


def as_bgr(image: Any) -> np.ndarray:
    """A frame as H x W x 3 uint8 BGR: grayscale is expanded, BGRA drops alpha, floats in 0–1 or
    0–255 are scaled; anything else is a clear error."""
    import cv2

    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or a.shape[0] == 0 or a.shape[1] == 0 or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise EmberError(f"cannot detect on an array of shape {list(a.shape)}: give an H x W x 3 (BGR), "
                         "H x W x 4 or H x W image with H, W > 0")
    if a.dtype != np.uint8:
        a = np.asarray(a, np.float32)
        a = (a * 255 if a.size and float(np.nanmax(a)) <= 1.0 else a).clip(0, 255).astype(np.uint8)
    if a.ndim == 2:
        return cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(a, cv2.COLOR_BGRA2BGR) if a.shape[2] == 4 else a


class Preprocess:
    """Letterbox a BGR frame into the model input described by the manifest's ``input``."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        shape = list(spec.get("shape") or [])
        self.layout = spec.get("layout", "NCHW")
        if len(shape) != 4:
            raise ModelError(f"a detector needs a 4-D image input, the manifest says {shape}")
        self.hw = (int(shape[2]), int(shape[3])) if self.layout == "NCHW" else (int(shape[1]), int(shape[2]))
        self.rgb = str(spec.get("color", "RGB")).upper() == "RGB"
        lb = spec.get("letterbox") or {}
        self.pad, self.center = int(lb.get("pad", 114)), bool(lb.get("center", True))
        norm = spec.get("normalization") or {}
        self.mean = np.asarray(norm.get("mean", [0.0]), np.float32)
        self.std = np.asarray(norm.get("std", [1.0]), np.float32)

    def __call__(self, frame: Any) -> tuple[np.ndarray, Letterbox]:
        bgr = as_bgr(frame)
        img, lb = letterbox(bgr[..., ::-1] if self.rgb else bgr, self.hw, self.pad, self.center)
        x = (img.astype(np.float32) - self.mean) / self.std
        x = x[None] if self.layout == "NHWC" else x.transpose(2, 0, 1)[None]
        return np.ascontiguousarray(x), lb


class Postprocess:
    """Decode, keep the wanted classes, class-aware NMS, map back to the image, label."""

    def __init__(self, spec: Mapping[str, Any], labels: Sequence[str], input_hw: tuple[int, int]) -> None:
        self.decoder_name = str(spec.get("decoder", ""))
        self.decode = get_decoder(self.decoder_name)
        self.score_threshold = float(spec.get("score_threshold", 0.3))
        self.iou_threshold = float(spec.get("iou_threshold", 0.5))
        self.max_det = int(spec.get("max_detections", 100))
        self.keep = list(spec.get("classes") or [])
        self.labels = list(labels)
        self.input_hw = input_hw

    def raw(self, outputs: Sequence[np.ndarray], threshold: float | None = None) -> Raw:
        outputs = [np.asarray(o) for o in outputs]
        if self.decoder_name == "centernet":  # NHWC maps (LiteRT) back to NCHW
            n = len(self.keep) or len(self.labels)
            outputs = [o.transpose(0, 3, 1, 2) if o.ndim == 4 and o.shape[1] not in (n, 4, n + 4)
                       and o.shape[3] in (n, 4, n + 4) else o for o in outputs]
        raw = self.decode(outputs, self.input_hw, self.score_threshold if threshold is None else threshold)
        if self.keep:
            wanted = np.isin(raw.classes, self.keep)
            remap = {c: i for i, c in enumerate(self.keep)}
            raw = Raw(raw.boxes[wanted], raw.scores[wanted],
                      np.array([remap[int(c)] for c in raw.classes[wanted]], np.int64))
        return raw

    def __call__(self, outputs: Sequence[np.ndarray], lb: Letterbox, threshold: float | None = None) -> list[Detection]:
        raw = self.raw(outputs, threshold)
        k = batched_nms(raw.boxes, raw.scores, raw.classes, self.iou_threshold, self.max_det)
        boxes = lb.to_image(raw.boxes[k])
        out = []
        for b, s, c in zip(boxes, raw.scores[k], raw.classes[k]):
            if b[2] - b[0] > 0 and b[3] - b[1] > 0:
                label = self.labels[c] if c < len(self.labels) else str(int(c))
                out.append(Detection(tuple(float(v) for v in b), float(s), int(c), label))  # type: ignore[arg-type]
        return out


class Detector:
    """Preprocess + a tier-switching ``ModelManager`` + decoding. ``detect(frame)`` takes a BGR
    frame (grayscale / BGRA are converted) and returns detections in that frame's pixels."""

    def __init__(self, manager: Any, threshold: float | None = None) -> None:
        m = manager.store.manifest
        if not m.output.get("decoder"):
            raise ModelError(f"model {m.name}: the manifest names no output decoder; import it with "
                             "'ember models import MODEL --decoder yolox|yolov5|yolov8|ssd|centernet'")
        self.manager = manager
        self.preprocess = Preprocess(m.input)
        self.postprocess = Postprocess(m.output, m.labels, self.preprocess.hw)
        if threshold is not None:
            self.postprocess.score_threshold = threshold

    @classmethod
    def from_folder(cls, folder: str | Path, tier: str | None = None, backend: str | None = None,
                    threads: int = 1, threshold: float | None = None, config: Mapping[str, Any] | None = None,
                    **manager_options: Any) -> Detector:
        from sdk.models.manager import ModelManager

        options = {"backend_options": {b: {"threads": threads} for b in ("onnxruntime", "litert", "tinygrad")},
                   "measure": "never", "initial": tier, **manager_options}
        if tier or backend:  # pinned: load it now, in this thread
            options["background"] = False
        manager = ModelManager.from_config(folder, config, **options)
        if tier or backend:
            manager.pin(tier or manager.tier, backend)
            manager(manager.store.example_input())  # the switch happens at a frame
        return cls(manager, threshold)

    @property
    def labels(self) -> list[str]:
        return self.postprocess.labels

    def infer(self, x: np.ndarray) -> list[np.ndarray]:
        return self.manager(x)

    def detect(self, frame: Any, threshold: float | None = None) -> list[Detection]:
        x, lb = self.preprocess(frame)
        return self.postprocess(self.infer(x), lb, threshold)

    def close(self) -> None:
        self.manager.close()

    def __enter__(self) -> Detector:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
