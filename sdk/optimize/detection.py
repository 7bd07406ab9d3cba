"""Detection-aware scoring for ``ember optimize --task detection --eval DIR``: mAP@0.5 per tier.

``DIR`` is a COCO-style folder (``annotations.json`` + ``images/``; each image may list
``labeled_classes``: only those classes are scored in it, so an unboxed object of another class
is not a false positive). Images are letterboxed to the model input; ground-truth boxes are
moved into the same frame, so raw model outputs are scored without undoing the letterbox.

The decoder comes by name from the SDK's detection package (``sdk.detect``) when it is
installed; until then a YOLOX decoder (anchor-free grid, strides 8/16/32) is built in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ModelError
from sdk.optimize.data import Dataset

COCO80 = ("person bicycle car motorcycle airplane bus train truck boat traffic_light fire_hydrant stop_sign "  # noqa: SIM905
          "parking_meter bench bird cat dog horse sheep cow elephant bear zebra giraffe backpack umbrella handbag "
          "tie suitcase frisbee skis snowboard sports_ball kite baseball_bat baseball_glove skateboard surfboard "
          "tennis_racket bottle wine_glass cup fork knife spoon bowl banana apple sandwich orange broccoli carrot "
          "hot_dog pizza donut cake chair couch potted_plant bed dining_table toilet tv laptop mouse remote keyboard "
          "cell_phone microwave oven toaster sink refrigerator book clock vase scissors teddy_bear hair_drier "
          "toothbrush").split()
IOU = 0.5
Decoder = Callable[[np.ndarray, tuple[int, int]], tuple[np.ndarray, np.ndarray, np.ndarray]]


def letterbox(img: np.ndarray, hw: tuple[int, int], pad: float = 114.0) -> tuple[np.ndarray, float]:
    """BGR HWC image → CHW float32 at ``hw``, resized keeping aspect, placed top-left (YOLOX style)."""
    import cv2

    r = min(hw[0] / img.shape[0], hw[1] / img.shape[1])
    nh, nw = max(1, round(img.shape[0] * r)), max(1, round(img.shape[1] * r))
    out = np.full((hw[0], hw[1], 3), pad, np.float32)
    out[:nh, :nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out.transpose(2, 0, 1), r


def load_coco(folder: str | Path, shape: list[int], limit: int | None = None, decoder: str = "yolox") -> Dataset:
    """Inputs letterboxed to ``shape`` and, per image, ``{"boxes" xyxy (input frame), "classes", "labeled",
    "hw", "decoder"}`` with COCO-80 class indices (what :func:`score_detection` needs)."""
    import cv2

    root = Path(folder)
    ann = root / "annotations.json"
    if not ann.is_file():
        raise ModelError(f"{root}: no annotations.json; --task detection needs a COCO-style folder "
                         "(annotations.json + images/)")
    coco = json.loads(ann.read_text())
    names = {c["id"]: c["name"].replace(" ", "_") for c in coco["categories"]}
    unknown = sorted(n for n in names.values() if n not in COCO80)
    if unknown:
        raise ModelError(f"{ann}: classes {unknown} are not COCO classes the decoder knows")
    per_image: dict[int, list[dict[str, Any]]] = {}
    for a in coco["annotations"]:
        per_image.setdefault(a["image_id"], []).append(a)
    xs, ys = [], []
    for im in coco["images"][:limit]:
        img = cv2.imread(str(root / "images" / im["file_name"]))
        if img is None:
            raise ModelError(f"{root / 'images' / im['file_name']}: cannot read the image")
        x, r = letterbox(img, (shape[2], shape[3]))
        anns = per_image.get(im["id"], [])
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                          for a in anns], np.float32).reshape(-1, 4) * r
        classes = np.array([COCO80.index(names[a["category_id"]]) for a in anns], np.int64)
        labeled = {COCO80.index(n.replace(" ", "_")) for n in im.get("labeled_classes", names.values())}
        xs.append(x)
        ys.append({"boxes": boxes, "classes": classes, "labeled": labeled, "hw": (shape[2], shape[3]),
                   "decoder": decoder})
    if not xs:
        raise ModelError(f"{root}: no images in annotations.json")
    y = np.empty(len(ys), object)
    y[:] = ys
    return Dataset(np.stack(xs), y, str(root))


def load_images(folder: str | Path, shape: list[int], limit: int | None = None) -> Dataset:
    """Calibration images (a COCO folder or a folder of .jpg/.png), letterboxed to ``shape``."""
    import cv2

    root = Path(folder)
    root = root / "images" if (root / "images").is_dir() else root
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:limit]
    if not files:
        raise ModelError(f"{root}: no .jpg/.png images for calibration")
    return Dataset(np.stack([letterbox(cv2.imread(str(f)), (shape[2], shape[3]))[0] for f in files]), None, str(root))


def decode_yolox(out: np.ndarray, hw: tuple[int, int], strides: tuple[int, ...] = (8, 16, 32)
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YOLOX raw output [A, 5 + classes] → (boxes xyxy, scores, classes) in the input frame."""
    grids, step = [], []
    for s in strides:
        gy, gx = np.meshgrid(np.arange(hw[0] // s), np.arange(hw[1] // s), indexing="ij")
        grids.append(np.stack([gx.ravel(), gy.ravel()], 1))
        step.append(np.full(gx.size, s))
    grid, stride = np.concatenate(grids).astype(np.float32), np.concatenate(step).astype(np.float32)[:, None]
    if len(grid) != len(out):
        raise ModelError(f"YOLOX decoder: {len(out)} anchors, an input of {hw} with strides {strides} "
                         f"gives {len(grid)}")
    xy = (out[:, :2] + grid) * stride
    wh = np.exp(np.minimum(out[:, 2:4], 10.0)) * stride
    cls = out[:, 5:].argmax(1)
    score = out[:, 4] * out[np.arange(len(out)), 5 + cls]
    return np.concatenate([xy - wh / 2, xy + wh / 2], 1), score, cls


def get_decoder(name: str) -> Decoder:
    """The decoder ``name`` from ``sdk.detect`` when present, else the built-in YOLOX one."""
    try:
        from sdk import detect  # type: ignore[attr-defined]
        lookup = getattr(detect, "get_decoder", None)
        if lookup is not None:
            decode = lookup(name)  # sdk.detect: decode([outputs], hw, threshold) -> Raw

            def adapted(out: np.ndarray, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
                raw = decode([out], hw, 0.0)
                return raw.boxes, raw.scores, raw.classes
            return adapted
    except ImportError:
        pass
    if name == "yolox":
        return decode_yolox
    raise ModelError(f"no detection decoder {name!r}; built in: yolox")


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.65, top: int = 100) -> np.ndarray:
    order, keep = scores.argsort()[::-1], []
    while order.size and len(keep) < top:
        i, order = order[0], order[1:]
        keep.append(i)
        order = order[box_iou(boxes[i], boxes[order]) <= iou]
    return np.array(keep, np.int64)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(a[:2], b[:, :2]), np.minimum(a[2:], b[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda x: np.prod(np.clip(x[..., 2:] - x[..., :2], 0, None), axis=-1)
    return inter / (area(a) + area(b) - inter + 1e-9)


def detections(out: np.ndarray, hw: tuple[int, int], decoder: Decoder, conf: float = 0.01
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    boxes, scores, classes = decoder(out, hw)
    m = scores >= conf
    boxes, scores, classes = boxes[m], scores[m], classes[m]
    keep = np.concatenate([np.flatnonzero(classes == c)[nms(boxes[classes == c], scores[classes == c])]
                           for c in np.unique(classes)]) if len(classes) else np.zeros(0, np.int64)
    return boxes[keep], scores[keep], classes[keep]


def map50(outputs: np.ndarray, truth: np.ndarray, hw: tuple[int, int], decoder: str | Decoder = "yolox") -> float:
    """mAP@0.5 in percent over the classes that have ground truth (all-point interpolated AP)."""
    dec = get_decoder(decoder) if isinstance(decoder, str) else decoder
    classes = sorted({int(c) for t in truth for c in t["classes"]})
    hits: dict[int, list[tuple[float, bool]]] = {c: [] for c in classes}
    n_gt = {c: sum(int((t["classes"] == c).sum()) for t in truth) for c in classes}
    for out, t in zip(outputs, truth):
        boxes, scores, cls = detections(out, hw, dec)
        for c in classes:
            if c not in t["labeled"]:
                continue  # unboxed class in this image: its detections are neither right nor wrong
            gt, used = t["boxes"][t["classes"] == c], set()
            for i in np.flatnonzero(cls == c)[np.argsort(-scores[cls == c])]:
                ious = box_iou(boxes[i], gt) if len(gt) else np.zeros(0)
                j = int(ious.argmax()) if len(ious) else -1
                ok = j >= 0 and ious[j] >= IOU and j not in used
                used.add(j) if ok else None
                hits[c].append((float(scores[i]), ok))
    aps = [_ap(hits[c], n_gt[c]) for c in classes if n_gt[c]]
    return float(np.mean(aps) * 100) if aps else 0.0


def score_detection(outputs: np.ndarray, truth: np.ndarray) -> float:
    """mAP@0.5 (percent) of raw outputs against :func:`load_coco` ground truth."""
    if len(truth) == 0 or not isinstance(truth[0], dict):
        raise ModelError("--task detection scores against a COCO folder: pass --eval DIR with annotations.json")
    return map50(outputs, truth, truth[0]["hw"], truth[0]["decoder"])


def load_detection_data(calib: Any, evalset: Any, shape: list[int], calib_limit: int | None,
                        eval_limit: int | None, decoder: str) -> tuple[Any, Any]:
    """Folders become letterboxed images (calibration) and a scored COCO set (evaluation)."""
    if isinstance(calib, (str, Path)) and Path(calib).is_dir() and not (Path(calib) / "x.npy").is_file():
        calib = load_images(calib, shape, calib_limit)
    if isinstance(evalset, (str, Path)) and Path(evalset).is_dir():
        evalset = load_coco(evalset, shape, eval_limit, decoder)
    return calib, evalset


def _ap(hits: list[tuple[float, bool]], n_gt: int) -> float:
    if not hits:
        return 0.0
    tp = np.array([ok for _, ok in sorted(hits, key=lambda h: -h[0])], np.float64)
    recall = np.cumsum(tp) / n_gt
    precision = np.cumsum(tp) / np.arange(1, len(tp) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    r = np.concatenate([[0.0], recall])
    return float(np.sum((r[1:] - r[:-1]) * precision))
