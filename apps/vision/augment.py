"""Training-time data: label merging (ground truth + teacher pseudo-labels) and augmentation (mosaic,
scale, translation, flip, colour); the targets are made in :mod:`apps.vision.assign`. numpy + OpenCV only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from apps.vision.data import Sample


@dataclass
class Item:
    image: np.ndarray  # RGB uint8, longest side <= 416
    boxes: np.ndarray  # [N, 4] positives
    classes: np.ndarray
    ignore: np.ndarray  # [M, 4] regions where a class is uncertain
    ignore_classes: np.ndarray
    labeled: np.ndarray  # [C] bool: classes whose every instance is boxed (ground truth)


def merge_labels(s: Sample, teacher: list, hi: float = 0.4, lo: float = 0.4) -> tuple[np.ndarray, ...]:
    """Ground truth for the image's labeled classes; teacher boxes >= ``hi`` for the others, and
    teacher boxes in ``[lo, hi)`` of the others as class-specific ignore regions (none by default: the
    dense teacher scores are the soft targets of those classes)."""
    t = np.asarray(teacher, np.float32).reshape(-1, 6)
    other = ~np.isin(t[:, 5].astype(int), list(s.labeled))
    pos, unsure = t[other & (t[:, 4] >= hi)], t[other & (t[:, 4] >= lo) & (t[:, 4] < hi)]
    boxes = np.concatenate([s.boxes, pos[:, :4]]).astype(np.float32)
    classes = np.concatenate([s.classes, pos[:, 5].astype(np.int64)])
    return boxes, classes, unsure[:, :4].copy(), unsure[:, 5].astype(np.int64)


def _place(canvas: np.ndarray, item: Item, region: tuple[int, int, int, int], scale: float,
           rng: np.random.Generator, out: list, regions: list) -> None:
    """Scale ``item`` by ``scale`` into ``region`` of the canvas at a random offset (crop or pad)."""
    import cv2

    x0, y0, x1, y1 = region
    regions.append([x0, y0, x1, y1, item.labeled])
    rw, rh = x1 - x0, y1 - y0
    h, w = item.image.shape[:2]
    sw, sh = w * scale, h * scale
    tx = rng.uniform(min(0, rw - sw), max(0, rw - sw))
    ty = rng.uniform(min(0, rh - sh), max(0, rh - sh))
    m = np.array([[scale, 0, tx], [0, scale, ty]], np.float32)
    canvas[y0:y1, x0:x1] = cv2.warpAffine(item.image, m, (rw, rh), flags=cv2.INTER_LINEAR,
                                          borderValue=(114, 114, 114))
    for boxes, classes, is_pos in ((item.boxes, item.classes, True), (item.ignore, item.ignore_classes, False)):
        b = boxes * scale + np.array([tx + x0, ty + y0, tx + x0, ty + y0], np.float32)
        c = b.copy()
        c[:, [0, 2]] = c[:, [0, 2]].clip(x0, x1)
        c[:, [1, 3]] = c[:, [1, 3]].clip(y0, y1)
        area = np.prod((b[:, 2:] - b[:, :2]).clip(1e-6), axis=1)
        vis = np.prod((c[:, 2:] - c[:, :2]).clip(0), axis=1) / area
        big = ((c[:, 2:] - c[:, :2]) >= 2).all(axis=1)
        keep = big & (vis >= 0.4) if is_pos else big
        out.append((c[keep], classes[keep], is_pos))
        if is_pos:  # mostly cut-off objects: neither positive nor negative
            cut = big & (vis < 0.4)
            out.append((c[cut], classes[cut], False))


def _colour(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    gains = rng.uniform([-0.015, 0.5, 0.6], [0.015, 1.5, 1.4])
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + gains[0] * 180) % 180
    hsv[..., 1:] *= gains[1:]
    return cv2.cvtColor(hsv.clip(0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB)


def augment(items: list[Item], size: int, rng: np.random.Generator, mosaic: float = 0.5,
            p: np.ndarray | None = None) -> tuple:
    """One training image of ``size`` x ``size`` from 1 (or 4, mosaic) items, with its labels;
    items are drawn with probabilities ``p`` (uniform when None). Returns the image, boxes, classes,
    ignore boxes and classes, and the regions ``(x0, y0, x1, y1, labeled)`` of the source images."""
    canvas = np.full((size, size, 3), 114, np.uint8)
    parts: list = []
    regions: list = []
    if rng.random() < mosaic:
        xc, yc = (int(rng.uniform(0.3, 0.7) * size) for _ in range(2))
        quads = [(0, 0, xc, yc), (xc, 0, size, yc), (0, yc, xc, size), (xc, yc, size, size)]
        for k, reg in zip(rng.choice(len(items), 4, p=p), quads):
            item = items[k]
            fit = max((reg[2] - reg[0]) / item.image.shape[1], (reg[3] - reg[1]) / item.image.shape[0])
            _place(canvas, item, reg, fit * rng.uniform(0.8, 1.6), rng, parts, regions)
    else:
        item = items[rng.choice(len(items), p=p)]
        fit = size / max(item.image.shape[:2])
        _place(canvas, item, (0, 0, size, size), fit * rng.uniform(0.6, 1.5), rng, parts, regions)
    pos = [(b, c) for b, c, p in parts if p]
    neg = [(b, c) for b, c, p in parts if not p]
    boxes, classes = np.concatenate([b for b, _ in pos]), np.concatenate([c for _, c in pos])
    ign, ign_c = np.concatenate([b for b, _ in neg]), np.concatenate([c for _, c in neg])
    if rng.random() < 0.5:
        canvas = canvas[:, ::-1].copy()
        boxes[:, [0, 2]] = size - boxes[:, [2, 0]]
        ign[:, [0, 2]] = size - ign[:, [2, 0]]
        regions = [[size - r[2], r[1], size - r[0], r[3], r[4]] for r in regions]
    return _colour(canvas, rng), boxes, classes, ign, ign_c, regions
