"""Training targets of Ember's detector agree with the app's own decoding: boxes assigned to cells come
back through the ``yolov8`` decoder + NMS exactly, the cell order of the torch model, the targets and
the teacher is the same, and unlabeled classes take the teacher's scores. No training here."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from apps.vision.assign import DenseTeacher, assign, cells, make_targets
from apps.vision.data import CLASSES, load_folder
from sdk.detect import ImageResult, batched_nms, box_iou, evaluate_map, get_decoder, letterbox

SIZE = 320
BOXES = np.array([[10, 12, 22, 26], [40, 40, 120, 200], [150, 60, 318, 310], [200, 20, 260, 50]], np.float32)
CLASSES_OF = np.array([0, 2, 4, 5])
NONE = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)


def _decode(t, size: int = SIZE):  # type: ignore[no-untyped-def]
    """Targets as if they were the model's two outputs, through the app's decoder and NMS."""
    b = t.boxes
    cxcywh = np.concatenate([(b[:, :2] + b[:, 2:]) / 2, b[:, 2:] - b[:, :2]], 1)
    raw = get_decoder("yolov8")([cxcywh[None], (t.scores * t.positive[:, None])[None]], (size, size), 0.5)
    k = batched_nms(raw.boxes, raw.scores, raw.classes, 0.5)
    return raw.boxes[k], raw.scores[k], raw.classes[k]


@pytest.mark.parametrize("with_teacher", [False, True])
def test_targets_decode_back_to_the_boxes(with_teacher: bool) -> None:
    everything = [(0, 0, SIZE, SIZE, np.ones(len(CLASSES), bool))]
    teacher = None
    if with_teacher:  # a teacher that puts a box slightly off every object at every cell
        centres, _ = cells(SIZE)
        near = np.argmin(np.abs(centres[:, None, 0] - BOXES[None, :, 0]), axis=1) % len(BOXES)
        teacher = (np.full((len(centres), len(CLASSES)), 0.3, np.float32), BOXES[near] + 2)
    t = make_targets(SIZE, BOXES, CLASSES_OF, *NONE, everything, len(CLASSES), teacher)
    boxes, scores, classes = _decode(t)
    assert len(boxes) == len(BOXES)
    iou = box_iou(BOXES, boxes)
    assert (iou.max(1) > 0.999).all() and (classes[iou.argmax(1)] == CLASSES_OF).all()
    res = ImageResult(BOXES, CLASSES_OF, boxes, scores, classes, None)
    assert evaluate_map([res], CLASSES)["map50_95"] == pytest.approx(1.0)
    assert (t.scores[~t.positive] == 0).all(), "every class is labeled: no soft target anywhere"


def test_unlabeled_regions_take_the_teacher_scores_and_cut_boxes_are_ignored() -> None:
    centres, _ = cells(SIZE)
    scores = np.full((len(centres), len(CLASSES)), 0.25, np.float32)
    left = np.isin(np.arange(len(CLASSES)), [2])  # the left half labels cars only
    regions = [(0, 0, 160, SIZE, left), (160, 0, SIZE, SIZE, np.zeros(len(CLASSES), bool))]
    cut = np.array([[0, 250, 100, 320]], np.float32)
    t = make_targets(SIZE, BOXES[1:2], CLASSES_OF[1:2], cut, np.array([2]), regions, len(CLASSES),
                     (scores, np.tile(centres, 2)))
    is_left = centres[:, 0] < 160
    assert (t.scores[~is_left] >= 0.25).all(), "unlabeled: the teacher's scores (or 1 at positives)"
    assert (t.scores[is_left & ~t.positive][:, 2] == 0).all(), "labeled cars: only the boxes count"
    assert (t.scores[is_left][:, 0] == 0.25).all(), "people are not labeled on the left either"
    assert t.positive.any() and (t.scores[t.positive, 2] == 1).all()
    in_cut = (centres[:, 0] > 0) & (centres[:, 0] < 100) & (centres[:, 1] > 250)
    assert (t.weight[in_cut & ~t.positive, 2] == 0).all() and (t.weight[~in_cut] == 1).all()


def test_assignment_follows_the_teacher_boxes() -> None:
    centres, strides = cells(SIZE)
    gt = np.array([[112, 112, 240, 240]], np.float32)
    t_boxes = np.tile(centres, 2)  # points: IoU 0 everywhere ...
    good = int(np.nonzero((strides == 32) & (np.abs(centres - 176).sum(1) < 1))[0][0])
    t_boxes[good] = gt[0] + 1  # ... but one stride-32 cell, whose box fits
    match = assign(centres, strides, t_boxes, gt)
    assert match[good] == 0 and (match >= 0).sum() == 1
    assert (assign(centres, strides, t_boxes, np.zeros((0, 4), np.float32)) == -1).all()


def test_model_cells_are_the_targets_cells() -> None:
    torch = pytest.importorskip("torch")
    from apps.vision.net import TinyDet

    torch.manual_seed(0)
    net = TinyDet(len(CLASSES), width=0.25).eval()
    with torch.no_grad():
        for reg in net.reg:  # every distance 0: each box is its cell's centre
            reg.weight.zero_()
            reg.bias.fill_(-1.0)
        x = torch.rand(1, 3, 96, 96) * 255
        logits, xyxy = net.raw(x)
        boxes, scores = net(x)
    centres, _ = cells(96)
    assert xyxy.shape == (1, len(centres), 4) and scores.shape == (1, len(centres), len(CLASSES))
    np.testing.assert_allclose(xyxy[0, :, :2].numpy(), centres)
    np.testing.assert_allclose(boxes[0, :, :2].numpy(), centres)
    np.testing.assert_allclose(scores.numpy(), torch.sigmoid(logits).numpy())


def test_dense_teacher_sees_the_cars_of_a_real_image(shared_data: Path) -> None:
    path = shared_data.parent / "models" / "yolox_nano.onnx"
    if not path.exists():
        pytest.skip(f"{path} not found")
    val = shared_data / "detection" / "val"
    s = next(s for s in load_folder(val) if s.path.name == "veh_a6505b29e08e.jpg")
    rgb, lb = letterbox(cv2.cvtColor(cv2.imread(str(s.path)), cv2.COLOR_BGR2RGB), (SIZE, SIZE))
    scores, boxes = DenseTeacher(path)(rgb)
    assert scores.shape == (len(cells(SIZE)[0]), len(CLASSES))
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    sure = scores[:, 2] > 0.5
    assert sure.sum() >= 3
    # a confident cell's box is near that cell (the same cell order as the targets)
    assert (np.abs(centres[sure] - cells(SIZE)[0][sure]).max(1) < 2 * cells(SIZE)[1][sure]).all()
    gt = lb.to_model(s.boxes)
    assert (box_iou(boxes[sure], gt).max(1) > 0.5).mean() > 0.8
