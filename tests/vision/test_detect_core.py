"""sdk.detect: letterbox round trip, IoU/NMS, every decoder on hand-made outputs, mAP."""

from __future__ import annotations

import numpy as np
import pytest

from sdk.detect import (
    ImageResult,
    Postprocess,
    average_precision,
    batched_nms,
    box_iou,
    evaluate_map,
    get_decoder,
    guess_decoder,
    letterbox,
    nms,
)
from sdk.detect.decoders import yolox_grid
from sdk.errors import EmberError, ModelError


@pytest.mark.parametrize("hw", [(480, 640), (640, 360), (100, 100), (37, 211)])
@pytest.mark.parametrize("center", [True, False])
def test_letterbox_round_trip_maps_boxes_back_exactly(hw: tuple[int, int], center: bool) -> None:
    img = np.random.default_rng(0).integers(0, 255, (*hw, 3), dtype=np.uint8)
    out, lb = letterbox(img, (320, 320), center=center)
    assert out.shape == (320, 320, 3)
    boxes = np.array([[0, 0, hw[1], hw[0]], [10.5, 7.25, 30, 33]], np.float32)
    back = lb.to_image(lb.to_model(boxes))
    np.testing.assert_allclose(back, boxes, atol=1e-3)
    # the image content sits where to_model says: the full-image box spans the unpadded area
    x1, y1, x2, y2 = lb.to_model(boxes[:1])[0]
    assert (x1, y1) == (lb.pad_x, lb.pad_y)
    assert abs((x2 - x1) - round(hw[1] * lb.scale)) <= 1 and abs((y2 - y1) - round(hw[0] * lb.scale)) <= 1
    if center:
        assert abs(lb.pad_x - (320 - (x2 - x1)) / 2) <= 1 and abs(lb.pad_y - (320 - (y2 - y1)) / 2) <= 1
    else:
        assert lb.pad_x == 0 and lb.pad_y == 0
        assert (out[int(y2) + 1:, :] == 114).all() if y2 < 319 else True


def test_letterbox_rejects_an_empty_image() -> None:
    with pytest.raises(EmberError, match="cannot letterbox"):
        letterbox(np.zeros((0, 10, 3), np.uint8), (64, 64))


def test_iou_and_nms() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    np.testing.assert_allclose(box_iou(a, b)[0], [50 / 150, 0.0, 1.0], rtol=1e-6)
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    assert nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5).tolist() == [0, 2]
    assert nms(boxes, np.array([0.6, 0.8, 0.7]), 0.5).tolist() == [1, 2]
    # class-aware: the overlapping pair survives when the classes differ
    assert sorted(batched_nms(boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 1, 0]), 0.5).tolist()) == [0, 1, 2]
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0)).size == 0


def _yolox_output(hw: tuple[int, int], cells: dict[int, tuple], n_cls: int = 3) -> np.ndarray:
    grid, stride = yolox_grid(hw)
    out = np.full((len(grid), 5 + n_cls), 0.0, np.float32)
    out[:, 2:4] = 0.0
    for idx, (cx, cy, w, h, obj, cls, p) in cells.items():
        s = stride[idx, 0]
        out[idx, 0:2] = np.array([cx, cy]) / s - grid[idx]
        out[idx, 2:4] = np.log(np.array([w, h]) / s)
        out[idx, 4] = obj
        out[idx, 5 + cls] = p
    return out[None]


def test_yolox_decoder_recovers_known_boxes() -> None:
    hw = (64, 96)
    grid, _stride = yolox_grid(hw)
    assert len(grid) == (8 * 12) + (4 * 6) + (2 * 3)
    i8 = 3 * 12 + 5  # stride-8 cell (x=5, y=3)
    i32 = len(grid) - 1  # last stride-32 cell
    out = _yolox_output(hw, {i8: (44.0, 28.0, 16.0, 8.0, 0.9, 2, 0.8), i32: (80.0, 48.0, 30.0, 20.0, 0.5, 0, 0.5)})
    raw = get_decoder("yolox")([out], hw, 0.2)
    order = np.argsort(-raw.scores)
    np.testing.assert_allclose(raw.boxes[order], [[36, 24, 52, 32], [65, 38, 95, 58]], atol=1e-4)
    np.testing.assert_allclose(raw.scores[order], [0.72, 0.25], atol=1e-6)
    assert raw.classes[order].tolist() == [2, 0]
    assert len(get_decoder("yolox")([out], hw, 0.5).scores) == 1
    with pytest.raises(ModelError, match="does not match"):
        get_decoder("yolox")([out], (64, 64), 0.2)


def test_yolov5_and_yolov8_decoders() -> None:
    v5 = np.zeros((1, 4, 7), np.float32)
    v5[0, 1] = [50, 40, 20, 10, 0.8, 0.1, 0.9]
    raw = get_decoder("yolov5")([v5], (100, 100), 0.3)
    np.testing.assert_allclose(raw.boxes, [[40, 35, 60, 45]])
    np.testing.assert_allclose(raw.scores, [0.72], atol=1e-6)
    assert raw.classes.tolist() == [1]
    v8 = np.zeros((1, 4 + 80, 300), np.float32)  # ultralytics layout [1, 4 + C, N]
    v8[0, :4, 7] = [10, 20, 4, 6]
    v8[0, 4 + 79, 7] = 0.6
    raw = get_decoder("yolov8")([v8], (100, 100), 0.3)
    np.testing.assert_allclose(raw.boxes, [[8, 17, 12, 23]])
    assert raw.classes.tolist() == [79]
    # boxes and scores as two outputs (Ember's own detector), in either layout and either order
    boxes, scores = v8[:, :4].transpose(0, 2, 1), v8[:, 4:].transpose(0, 2, 1)
    for outs in ([boxes, scores], [scores, boxes], [boxes.transpose(0, 2, 1), scores.transpose(0, 2, 1)]):
        raw = get_decoder("yolov8")(outs, (100, 100), 0.3)
        np.testing.assert_allclose(raw.boxes, [[8, 17, 12, 23]])
        assert raw.classes.tolist() == [79] and raw.scores.tolist() == pytest.approx([0.6])
    with pytest.raises(ModelError, match="two outputs"):
        get_decoder("yolov8")([boxes, scores[:, :10]], (100, 100), 0.3)


def test_ssd_postprocess_decoder() -> None:
    boxes = np.zeros((1, 10, 4), np.float32)
    boxes[0, 0] = [0.1, 0.2, 0.5, 0.6]  # ymin xmin ymax xmax, normalised
    boxes[0, 1] = [0.0, 0.0, 1.0, 1.0]
    classes = np.array([[2, 0] + [0] * 8], np.float32)
    scores = np.array([[0.9, 0.2] + [0] * 8], np.float32)
    raw = get_decoder("ssd")([boxes, classes, scores, np.array([2], np.float32)], (300, 200), 0.5)
    np.testing.assert_allclose(raw.boxes, [[40, 30, 120, 150]], atol=1e-4)
    assert raw.classes.tolist() == [2] and raw.scores.tolist() == pytest.approx([0.9])
    with pytest.raises(ModelError, match="4 outputs"):
        get_decoder("ssd")([boxes], (300, 200), 0.5)


def test_centernet_decoder_takes_peaks_only() -> None:
    heat = np.zeros((1, 2, 8, 8), np.float32)
    heat[0, 1, 2, 3] = 0.9
    heat[0, 1, 2, 4] = 0.5  # a neighbour of the peak: suppressed
    heat[0, 0, 6, 6] = 0.4
    ltrb = np.zeros((1, 4, 8, 8), np.float32)
    ltrb[0, :, 2, 3] = [4, 2, 6, 8]
    raw = get_decoder("centernet")([heat, ltrb], (64, 64), 0.3)  # stride 8
    order = np.argsort(-raw.scores)
    assert raw.classes[order].tolist() == [1, 0]
    np.testing.assert_allclose(raw.boxes[order][0], [28 - 4, 20 - 2, 28 + 6, 20 + 8])
    # one concatenated output works the same way
    both = get_decoder("centernet")([np.concatenate([heat, ltrb], 1)], (64, 64), 0.3)
    np.testing.assert_allclose(both.boxes, raw.boxes)


def test_postprocess_keeps_wanted_classes_and_maps_back() -> None:
    out = _yolox_output((64, 64), {5: (44.0, 28.0, 16.0, 8.0, 0.9, 2, 0.8), 9: (20.0, 20.0, 8.0, 8.0, 0.9, 1, 0.8)})
    post = Postprocess({"decoder": "yolox", "classes": [2], "score_threshold": 0.3}, ["car"], (64, 64))
    _, lb = letterbox(np.zeros((32, 64, 3), np.uint8), (64, 64), center=False)  # scale 1, no padding
    dets = post([out], lb)
    assert [(d.label, d.class_id) for d in dets] == [("car", 0)]
    assert dets[0].box == pytest.approx((36, 24, 52, 32))


def test_guess_decoder() -> None:
    assert guess_decoder([[1, 3549, 85]], (416, 416)) == "yolox"
    assert guess_decoder([[1, 25200, 85]], (640, 640)) == "yolov5"
    assert guess_decoder([[1, 84, 8400]], (640, 640)) == "yolov8"
    assert guess_decoder([[1, 2100, 4], [1, 2100, 6]], (320, 320)) == "yolov8"
    assert guess_decoder([[1, 10, 4], [1, 10], [1, 10], [1]], (300, 300)) == "ssd"
    assert guess_decoder([[1, 6, 40, 40], [1, 4, 40, 40]], (320, 320)) == "centernet"
    with pytest.raises(ModelError, match="match no decoder"):
        guess_decoder([[1, 1000]], (224, 224))


def _res(gt: list, dets: list, labeled: set[int] | None = None) -> ImageResult:
    g = np.array([b for b, _ in gt], np.float32).reshape(-1, 4)
    d = np.array([b for b, _, _ in dets], np.float32).reshape(-1, 4)
    return ImageResult(g, np.array([c for _, c in gt], np.int64), d, np.array([s for _, s, _ in dets], np.float32),
                       np.array([c for _, _, c in dets], np.int64), labeled)


def test_map_perfect_partial_and_labeled_classes() -> None:
    box, other = [0, 0, 10, 10], [20, 20, 30, 30]
    perfect = evaluate_map([_res([(box, 0)], [(box, 0.9, 0)])], ["a"])
    assert perfect["map50"] == 1.0 and perfect["map50_95"] == 1.0
    # a false positive ranked above the true positive: precision 1/2 at recall 1 -> AP 0.5
    fp_first = evaluate_map([_res([(box, 0)], [(other, 0.9, 0), (box, 0.8, 0)])], ["a"])
    assert fp_first["map50"] == pytest.approx(0.5)
    # the same false positive in an image where class 0 is not labeled is ignored
    ignored = evaluate_map([_res([(box, 0)], [(box, 0.8, 0)]),
                            _res([], [(other, 0.9, 0)], labeled={1})], ["a", "b"])
    assert ignored["map50"] == 1.0 and ignored["per_class"]["b"]["ap50"] is None
    # a duplicate detection of one object is a false positive
    dup = evaluate_map([_res([(box, 0)], [(box, 0.9, 0), (box, 0.8, 0)])], ["a"])
    assert dup["map50"] == 1.0  # AP is unchanged: the duplicate comes after full recall
    assert average_precision(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_mot_metrics_count_switches_misses_and_false_positives() -> None:
    from sdk.detect.metrics import mot_metrics

    b = np.array([0, 0, 10, 10], np.float32)
    far = np.array([50, 50, 60, 60], np.float32)
    gt = [{1: b}, {1: b}, {1: b}, {1: b}]
    assert mot_metrics(gt, [{7: b}] * 4) == {"mota": 1.0, "id_switches": 0, "misses": 0, "false_positives": 0,
                                              "matches": 4, "gt": 4}
    res = mot_metrics(gt, [{7: b}, {8: b}, {}, {8: b, 9: far}])
    assert (res["id_switches"], res["misses"], res["false_positives"]) == (1, 1, 1)
    assert res["mota"] == pytest.approx(1 - 3 / 4)


def test_best_threshold_drops_low_score_false_positives() -> None:
    from apps.vision.evaluate import best_threshold

    box, other = [0, 0, 10, 10], [20, 20, 30, 30]
    results = [_res([(box, 0)], [(box, 0.7, 0), (other, 0.2, 0)]), _res([(box, 0)], [(box, 0.5, 0), (other, 0.15, 0)])]
    t, f1 = best_threshold(results, 1)
    assert 0.2 < t <= 0.5 and f1 == 1.0
