"""The vision app with its shipped model and real parts: ONNX Runtime / LiteRT sessions, real images
from the shared data, the real YOLOX-nano through ``ember models import``, the CLI end to end."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from apps.vision import APP, MODEL_DIR, Detector
from apps.vision.data import load_folder
from sdk.cli import main
from sdk.detect import box_iou, import_model
from sdk.errors import EmberError, ModelError
from sdk.models.manifest import Manifest

VAL_CAR = "veh_a6505b29e08e.jpg"  # a val image with several boxed cars


@pytest.fixture(scope="module")
def street(shared_data: Path) -> np.ndarray:
    img = cv2.imread(str(shared_data / "detection" / "val" / "images" / VAL_CAR))
    assert img is not None
    return img


@pytest.fixture(scope="module")
def detector():  # type: ignore[no-untyped-def]
    with Detector.from_folder(MODEL_DIR, tier="fp32", backend="onnxruntime") as det:
        yield det


def _variants() -> list[tuple[str, str]]:
    return [(v.tier, v.backend) for v in Manifest.load(MODEL_DIR).variants]


def test_shipped_manifest_describes_a_detector() -> None:
    m = Manifest.load(MODEL_DIR)
    assert m.output["decoder"] == "yolov8" and m.output["names"] == ["boxes", "scores"]
    assert m.labels == ["person", "bicycle", "car", "motorcycle", "bus", "truck"]
    assert {"fp32", "int8"} <= {v.tier for v in m.variants}


@pytest.mark.parametrize("key", _variants(), ids=lambda k: "/".join(k))
def test_every_tier_and_backend_finds_cars_in_a_real_image(key: tuple[str, str], street: np.ndarray) -> None:
    with Detector.from_folder(MODEL_DIR, tier=key[0], backend=key[1]) as det:
        assert det.manager.current == key
        dets = det.detect(street, threshold=0.3)
    cars = [d for d in dets if d.label == "car"]
    assert cars, f"{key}: no car found; got {[(d.label, round(d.score, 2)) for d in dets]}"
    h, w = street.shape[:2]
    for d in dets:
        x1, y1, x2, y2 = d.box
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h


def test_tinygrad_runs_the_fp32_model_like_onnxruntime(detector: Detector, street: np.ndarray) -> None:
    """The third backend: no tinygrad variant ships (its first run compiles for about a minute), but the
    fp32 ONNX file must run in it and give ONNX Runtime's detections."""
    from sdk.runtime.backends import available_backends, load_backend

    assert "tinygrad" in available_backends()
    fp32 = Manifest.load(MODEL_DIR).variant("fp32", "onnxruntime")
    x, lb = detector.preprocess(street)
    tg = load_backend(MODEL_DIR / fp32.file, "tinygrad")
    try:
        got = tg.run(x)
    finally:
        tg.close()
    ref = detector.infer(x)
    for a, b in zip(got, ref):
        assert a.shape == b.shape and np.abs(a - b).max() <= 1e-4 * max(1.0, float(np.abs(b).max()))
    ours, theirs = detector.postprocess(got, lb, 0.3), detector.postprocess(ref, lb, 0.3)
    assert [d.label for d in ours] == [d.label for d in theirs] and any(d.label == "car" for d in ours)
    assert all(box_iou(np.array([a.box]), np.array([b.box]))[0, 0] > 0.999 for a, b in zip(ours, theirs))


def test_bad_frames_are_converted_or_refused(detector: Detector, street: np.ndarray, tmp_path: Path) -> None:
    colour = detector.detect(street)
    gray = detector.detect(cv2.cvtColor(street, cv2.COLOR_BGR2GRAY))
    assert gray, "a grayscale frame is converted, not refused"
    bgra = detector.detect(cv2.cvtColor(street, cv2.COLOR_BGR2BGRA))
    assert [d.label for d in bgra] == [d.label for d in colour]
    png = tmp_path / "rgba.png"
    cv2.imwrite(str(png), cv2.cvtColor(street, cv2.COLOR_BGR2BGRA))
    assert cv2.imread(str(png), cv2.IMREAD_UNCHANGED).shape[2] == 4
    assert detector.detect(cv2.imread(str(png), cv2.IMREAD_UNCHANGED))
    floats = detector.detect(street.astype(np.float32) / 255)
    assert [d.label for d in floats] == [d.label for d in colour]
    for bad in (np.zeros((0, 0, 3), np.uint8), np.zeros((10, 10, 2), np.uint8), np.zeros(5)):
        with pytest.raises(EmberError, match="cannot detect"):
            detector.detect(bad)


def test_eval_reads_a_folder_and_refuses_corrupt_images(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "detection" / "val"
    coco = json.loads((src / "annotations.json").read_text())
    keep = coco["images"][:4]
    ids = {im["id"] for im in keep}
    (tmp_path / "images").mkdir()
    for im in keep:
        (tmp_path / "images" / im["file_name"]).write_bytes((src / "images" / im["file_name"]).read_bytes())
    sub = {**coco, "images": keep, "annotations": [a for a in coco["annotations"] if a["image_id"] in ids]}
    (tmp_path / "annotations.json").write_text(json.dumps(sub))
    assert len(load_folder(tmp_path)) == 4
    out = tmp_path / "eval.json"
    assert main(["eval", "vision", "--data", str(tmp_path), "--plot", str(tmp_path / "pr.png"), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert 0.0 <= res["map50"] <= 1.0 and res["images"] == 4 and res["tier"] == "fp32"
    assert (tmp_path / "pr.png").stat().st_size > 1000
    (tmp_path / "images" / keep[0]["file_name"]).write_bytes(b"not a jpeg")
    with pytest.raises(EmberError, match="corrupt"):
        APP.evaluate(type("A", (), {"data": str(tmp_path), "model": None, "tier": None, "backend": None,
                                    "plot": None, "threads": 1})())


def test_eval_needs_a_data_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(EmberError, match="no such data folder"):
        load_folder(tmp_path / "missing")
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8, 3), np.uint8))
    assert main(["eval", "vision", "--data", str(tmp_path)]) != 0
    assert "no annotations.json" in capsys.readouterr().err


@pytest.fixture(scope="module")
def yolox(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = shared_data.parent / "models" / "yolox_nano.onnx"
    if not model.is_file():
        pytest.skip(f"YOLOX-nano not found at {model}")
    labels = tmp_path_factory.mktemp("labels") / "coco8.txt"
    labels.write_text("person\nbicycle\ncar\nmotorcycle\nairplane\nbus\ntrain\ntruck\n")
    return import_model(model, tmp_path_factory.mktemp("yolox") / "m", "auto", labels, classes=[0, 1, 2, 3, 5, 7])


def test_import_real_yolox_nano(yolox: Path, street: np.ndarray, shared_data: Path) -> None:
    m = json.loads((yolox / "manifest.json").read_text())
    assert m["output"]["decoder"] == "yolox"  # guessed from the 3549 x 85 output
    assert m["input"]["color"] == "BGR" and m["input"]["letterbox"]["center"] is False
    assert m["labels"] == ["person", "bicycle", "car", "motorcycle", "bus", "truck"]
    with Detector.from_folder(yolox) as det:
        dets = det.detect(street)
    cars = [d for d in dets if d.label == "car" and d.score > 0.5]
    assert len(cars) >= 2
    gt = next(s for s in load_folder(shared_data / "detection" / "val") if s.path.name == VAL_CAR)
    iou = box_iou(np.array([d.box for d in cars]), gt.boxes[gt.classes == 2])
    assert (iou.max(axis=1) > 0.5).sum() >= 2, "YOLOX's confident cars match the annotated ones"


def test_import_refuses_a_model_that_fits_no_decoder(shared_data: Path, tmp_path: Path) -> None:
    model = shared_data.parent / "models" / "public_onnx" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"
    labels = tmp_path / "l.txt"
    labels.write_text("a\nb\n")
    with pytest.raises(ModelError, match="decoder"):
        import_model(model, tmp_path / "m", "auto", labels, input_size=48)
    with pytest.raises(ModelError):
        import_model(model, tmp_path / "m", "yolov8", labels, input_size=48)


def test_import_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"garbage")
    (tmp_path / "l.txt").write_text("a\n")
    assert main(["models", "import", str(bad), "--labels", str(tmp_path / "l.txt"), "--out", str(tmp_path / "o")]) != 0
    err = capsys.readouterr().err
    assert "cannot load" in err and "Traceback" not in err
