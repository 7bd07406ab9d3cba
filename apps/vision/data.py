"""Detection data sets laid out like ``detection/val``: ``annotations.json`` (COCO-style, each image
with ``labeled_classes``) and ``images/``; also plain image folders (no annotations)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sdk.errors import EmberError

CLASSES = ("person", "bicycle", "car", "motorcycle", "bus", "truck")
COCO_IDS = (0, 1, 2, 3, 5, 7)  # the same classes among COCO's 80
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class Sample:
    path: Path
    boxes: np.ndarray  # [N, 4] x1 y1 x2 y2 pixels
    classes: np.ndarray  # [N] indices into CLASSES
    labeled: set[int] = field(default_factory=set)  # classes whose every instance is boxed


def load_folder(root: Path | str, classes: tuple[str, ...] = CLASSES) -> list[Sample]:
    """Read a split: ``annotations.json`` + ``images/``, or just images (then nothing is labeled)."""
    root = Path(root)
    ann = root / "annotations.json"
    if not root.is_dir():
        raise EmberError(f"{root}: no such data folder (expected annotations.json and images/)")
    if not ann.exists():
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise EmberError(f"{root}: no annotations.json and no images")
        return [Sample(p, np.zeros((0, 4), np.float32), np.zeros(0, np.int64)) for p in files]
    try:
        coco = json.loads(ann.read_text())
        cat_names = {c["id"]: c["name"] for c in coco["categories"]}
        images = coco["images"]
    except (ValueError, KeyError, TypeError) as exc:
        raise EmberError(f"{ann}: not a COCO-style annotation file ({exc})") from exc
    index = {name: i for i, name in enumerate(classes)}
    per_image: dict[int, list[tuple[list[float], int]]] = {im["id"]: [] for im in images}
    for a in coco.get("annotations", []):
        name = cat_names.get(a["category_id"])
        if name in index and a["image_id"] in per_image:
            per_image[a["image_id"]].append((a["bbox"], index[name]))
    image_dir = root / "images" if (root / "images").is_dir() else root
    samples = []
    for im in images:
        items = per_image[im["id"]]
        xywh = np.array([b for b, _ in items], np.float32).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        labeled = im.get("labeled_classes", list(classes))
        samples.append(Sample(image_dir / im["file_name"], boxes,
                              np.array([c for _, c in items], np.int64),
                              {index[c] for c in labeled if c in index}))
    return samples
