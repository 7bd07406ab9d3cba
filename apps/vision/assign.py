"""Training targets for the multi-stride head: the teacher (YOLOX-nano) run on every augmented image
gives dense class scores and boxes in the student's own cell layout; boxes (ground truth and cached
pseudo-labels) are assigned to cells by a SimOTA-lite guided by the teacher's boxes; the classes an
image region does not label get the teacher's scores as soft targets. numpy + ONNX Runtime only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apps.vision.data import COCO_IDS
from sdk.detect.boxes import box_iou
from sdk.detect.decoders import yolox_grid

STRIDES = (8, 16, 32)


def cells(size: int, strides: tuple[int, ...] = STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres ``[N, 2]`` (x, y) and strides ``[N]`` in the student's output order."""
    centres, steps = [], []
    for s in strides:
        c = (np.arange(size // s) + 0.5) * s
        cy, cx = np.meshgrid(c, c, indexing="ij")
        centres.append(np.stack([cx.ravel(), cy.ravel()], 1))
        steps.append(np.full(cx.size, float(s)))
    return np.concatenate(centres).astype(np.float32), np.concatenate(steps).astype(np.float32)


class DenseTeacher:
    """YOLOX-style ONNX teacher (BGR 0-255, padded with 114) on a square RGB training image of any
    size up to its input, placed top-left: returns per-cell scores ``[N, C]`` (objectness x class,
    our classes) and boxes ``[N, 4]`` (x1 y1 x2 y2) for the student's cells of that image."""

    def __init__(self, path: Path | str, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        inp = self.session.get_inputs()[0]
        self.name, self.size = inp.name, int(inp.shape[2])
        self.grid, self.stride = yolox_grid((self.size, self.size))
        self._index: dict[int, np.ndarray] = {}

    def index(self, size: int) -> np.ndarray:
        """Rows of the teacher's output that are the student's cells of a ``size`` image."""
        if size not in self._index:
            parts, offset = [], 0
            for s in STRIDES:
                g_t, g = self.size // s, size // s
                rows, cols = np.meshgrid(np.arange(g), np.arange(g), indexing="ij")
                parts.append(offset + rows.ravel() * g_t + cols.ravel())
                offset += g_t * g_t
            self._index[size] = np.concatenate(parts)
        return self._index[size]

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        size = rgb.shape[0]
        x = np.full((1, 3, self.size, self.size), 114, np.float32)
        x[0, :, :size, :size] = rgb[..., ::-1].transpose(2, 0, 1)
        idx = self.index(size)
        out = self.session.run(None, {self.name: x})[0][0][idx]
        xy = (out[:, :2] + self.grid[idx]) * self.stride[idx]
        half = np.exp(np.minimum(out[:, 2:4], 10.0)) * self.stride[idx] / 2
        scores = out[:, 4:5] * out[:, 5:][:, list(COCO_IDS)]
        return scores.astype(np.float32), np.concatenate([xy - half, xy + half], 1).astype(np.float32)


def assign(centres: np.ndarray, strides: np.ndarray, t_boxes: np.ndarray, gt: np.ndarray,
           radius: float = 2.5, topk: int = 10) -> np.ndarray:
    """Index of the box each cell learns (-1: none). Candidates: cells whose centre is in the box or
    within ``radius`` strides of its centre; cost ``-3 log IoU(teacher's box at the cell, box)``, a large
    penalty outside box-and-centre and a small level prior; each box takes its ``k`` cheapest cells,
    ``k`` = the sum of its ``topk`` best IoUs (at least 1); a cell shared by boxes goes to the cheapest."""
    match = np.full(len(centres), -1, np.int64)
    if not len(gt):
        return match
    cx, cy = centres[None, :, 0], centres[None, :, 1]
    inbox = (cx > gt[:, :1]) & (cx < gt[:, 2:3]) & (cy > gt[:, 1:2]) & (cy < gt[:, 3:4])
    gc = (gt[:, :2] + gt[:, 2:]) / 2
    r = radius * strides[None]
    incen = (np.abs(cx - gc[:, :1]) < r) & (np.abs(cy - gc[:, 1:]) < r)
    cand = inbox | incen
    iou = box_iou(gt, t_boxes)
    side = np.sqrt(np.prod((gt[:, 2:] - gt[:, :2]).clip(1), axis=1))
    prior = 0.5 * np.abs(np.log2(side[:, None] / (8 * strides[None])))
    cost = -3 * np.log(iou + 1e-8) + 1e5 * ~(inbox & incen) + prior + 1e9 * ~cand
    k = np.maximum(1, np.sort(np.where(cand, iou, 0), axis=1)[:, -topk:].sum(1).astype(int))
    best = np.full(len(centres), np.inf)
    for g in range(len(gt)):
        take = np.argsort(cost[g], kind="stable")[: k[g]]
        take = take[cand[g, take] & (cost[g, take] < best[take])]
        match[take], best[take] = g, cost[g, take]
    return match


@dataclass
class Targets:
    scores: np.ndarray  # [N, C] soft class targets
    weight: np.ndarray  # [N, C] 0 where a class is neither positive nor negative
    boxes: np.ndarray  # [N, 4] x1 y1 x2 y2 targets of positive cells
    positive: np.ndarray  # [N] bool


def make_targets(size: int, boxes: np.ndarray, classes: np.ndarray, ignore: np.ndarray, ignore_classes: np.ndarray,
                 regions: list, num_classes: int, teacher: tuple[np.ndarray, np.ndarray] | None) -> Targets:
    """Targets of one training image. ``regions``: ``(x0, y0, x1, y1, labeled bool [C])`` per source image
    part; a class not labeled at a cell gets the teacher's score there (if any) as its target, a
    labeled one only its boxes; ``ignore`` boxes (cut-off objects) weigh 0 for their class."""
    centres, strides = cells(size)
    labeled = np.ones((len(centres), num_classes), bool)
    for x0, y0, x1, y1, lab in regions:
        inside = (centres[:, 0] >= x0) & (centres[:, 0] < x1) & (centres[:, 1] >= y0) & (centres[:, 1] < y1)
        labeled[inside] = lab
    y = np.zeros((len(centres), num_classes), np.float32)
    if teacher is not None:
        y = np.where(labeled, 0.0, teacher[0]).astype(np.float32)
    t_boxes = teacher[1] if teacher is not None else np.tile(centres, 2)
    match = assign(centres, strides, t_boxes, boxes)
    pos = match >= 0
    y[pos, classes[match[pos]]] = 1.0
    box_t = np.zeros((len(centres), 4), np.float32)
    box_t[pos] = boxes[match[pos]]
    weight = np.ones_like(y)
    for b, c in zip(ignore, ignore_classes):
        inside = (centres[:, 0] > b[0]) & (centres[:, 0] < b[2]) & (centres[:, 1] > b[1]) & (centres[:, 1] < b[3])
        weight[inside & (y[:, c] < 1), c] = 0.0
    return Targets(y, weight, box_t, pos)
