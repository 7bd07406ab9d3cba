"""mAP@0.5 scoring of raw YOLOX outputs against a COCO-style folder (labeled_classes honoured)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sdk.errors import ModelError
from sdk.optimize.detection import COCO80, load_coco, map50
from sdk.optimize.measure import score

HW = (64, 64)  # strides 8/16/32 → 64 + 16 + 4 = 84 anchors
ANCHORS = 84


def _raw(dets: list[tuple[float, float, float, float, int, float]]) -> np.ndarray:
    """A YOLOX output [84, 85] holding boxes (x1, y1, x2, y2, class, score) at stride-8 cells."""
    out = np.zeros((ANCHORS, 85), np.float32)
    out[:, 2:4] = np.log(1 / 8)  # everything else: tiny boxes, zero score
    for k, (x1, y1, x2, y2, cls, s) in enumerate(dets):
        cx, cy, w, h = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        gy, gx = divmod(k, 8)
        out[k, :4] = [cx / 8 - gx, cy / 8 - gy, np.log(w / 8), np.log(h / 8)]
        out[k, 4], out[k, 5 + cls] = 1.0, s
    return out


def _truth(boxes: list[list[float]], classes: list[int], labeled: set[int]) -> dict:
    return {"boxes": np.array(boxes, np.float32).reshape(-1, 4), "classes": np.array(classes), "labeled": labeled,
            "hw": HW, "decoder": "yolox"}


def test_map_is_100_for_exact_boxes_and_drops_for_misses() -> None:
    truth = np.array([_truth([[4, 4, 30, 40]], [2], {0, 2}), _truth([[10, 10, 50, 60]], [0], {0, 2})], object)
    perfect = np.stack([_raw([(4, 4, 30, 40, 2, 0.9)]), _raw([(10, 10, 50, 60, 0, 0.8)])])
    assert map50(perfect, truth, HW) == pytest.approx(100.0)
    shifted = np.stack([_raw([(30, 30, 60, 60, 2, 0.9)]), _raw([(10, 10, 50, 60, 0, 0.8)])])  # the car is missed
    assert score(shifted, truth, "detection") == pytest.approx(50.0)


def test_unlabeled_class_detections_are_not_false_positives() -> None:
    truth = np.array([_truth([[4, 4, 30, 40]], [2], {2})], object)  # only cars are boxed in this image
    person_too = np.stack([_raw([(4, 4, 30, 40, 2, 0.7), (30, 10, 60, 60, 0, 0.95)])])
    assert map50(person_too, truth, HW) == pytest.approx(100.0)
    truth_all = np.array([_truth([[4, 4, 30, 40], [0, 0, 5, 5]], [2, 0], {0, 2})], object)
    assert map50(person_too, truth_all, HW) < 100.0  # now the person box is wrong


def test_coco_folder_is_letterboxed_and_boxes_follow(tmp_path: Path) -> None:
    import cv2

    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.full((50, 100, 3), 200, np.uint8))
    ann = {"images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 50, "labeled_classes": ["car"]}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 5, 20, 10]}],
           "categories": [{"id": 3, "name": "car"}]}
    (tmp_path / "annotations.json").write_text(json.dumps(ann))
    ds = load_coco(tmp_path, [1, 3, 64, 64])
    assert ds.x.shape == (1, 3, 64, 64)
    assert ds.x[0, :, :32].mean() == pytest.approx(200, abs=1) and ds.x[0, :, 40:].mean() == 114  # pad below
    np.testing.assert_allclose(ds.y[0]["boxes"], [[6.4, 3.2, 19.2, 9.6]], rtol=1e-5)  # scaled by 0.64
    assert ds.y[0]["labeled"] == {COCO80.index("car")}
    ann["categories"] = [{"id": 3, "name": "spaceship"}]
    (tmp_path / "annotations.json").write_text(json.dumps(ann))
    with pytest.raises(ModelError, match="spaceship"):
        load_coco(tmp_path, [1, 3, 64, 64])
    with pytest.raises(ModelError, match="annotations.json"):
        load_coco(tmp_path / "images", [1, 3, 64, 64])
