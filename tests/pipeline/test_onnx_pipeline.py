"""A real ONNX Runtime model in the infer stage: the pipeline's results equal a plain loop's."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from sdk.errors import ModelError
from sdk.pipeline import JsonlSink, Pipeline, Stage
from sdk.pipeline.classify import (
    FitToShape,
    ImagePreprocess,
    ModelInfer,
    TopK,
    classification_stages,
    read_labels,
)


def test_classification_pipeline_matches_a_plain_session_loop(frames, tiny_model, tmp_path, recorder):
    labels = ["a", "b", "c", "d", "e"]
    src, sink = frames(50, hw=(48, 64)), recorder()
    st = Pipeline(src, classification_stages(tiny_model, labels, top_k=3),
                  [sink, JsonlSink(tmp_path / "out.jsonl")]).run()
    assert st.items_out == 50 and set(st.stages) == {"preprocess", "infer", "postprocess", "sinks"}

    sess = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"])
    pre = ImagePreprocess((32, 32))
    for pkt in sink.packets:
        probs = sess.run(None, {"input": pre(src.frame(pkt.item.seq))})[0].ravel()
        assert pkt.value["index"] == int(probs.argmax())
        assert pkt.value["label"] == labels[int(probs.argmax())]
        assert pkt.value["score"] == pytest.approx(float(probs.max()), rel=1e-5)
        assert [s for _, s in pkt.value["top"]] == sorted((s for _, s in pkt.value["top"]), reverse=True)
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["value"]["label"] for r in records] == [p.value["label"] for p in sink.packets]


def test_image_preprocess_layout_and_range():
    frame = np.zeros((10, 20, 3), np.uint8)
    frame[..., 2] = 255  # red in BGR
    x = ImagePreprocess((4, 8))(frame)
    assert x.shape == (1, 3, 4, 8) and x.dtype == np.float32
    assert np.all(x[0, 0] == 1.0) and np.all(x[0, 1:] == 0.0)  # RGB order, 0..1
    norm = ImagePreprocess((4, 8), mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])(frame)
    assert np.all(norm[0, 0] == 1.0) and np.all(norm[0, 1] == -1.0)


def test_image_preprocess_nhwc():
    frame = np.zeros((10, 20, 3), np.uint8)
    frame[..., 0] = 255  # blue in BGR
    x = ImagePreprocess((5, 6), layout="NHWC")(frame)
    assert x.shape == (1, 5, 6, 3) and np.all(x[..., 2] == 1.0) and np.all(x[..., :2] == 0.0)


def test_litert_backend_in_the_infer_stage_agrees_with_onnxruntime(frames, tiny_model, tmp_path, recorder):
    from sdk.optimize.tflite_export import onnx_to_tflite

    tflite = onnx_to_tflite(tiny_model, tmp_path / "tiny.tflite")
    results = {}
    for backend, model in (("onnxruntime", tiny_model), ("litert", tflite)):
        sink = recorder()
        stages = classification_stages(model, backend=backend)
        assert isinstance(stages[0].fn, ImagePreprocess)
        Pipeline(frames(20, hw=(48, 64)), stages, [sink]).run()
        results[backend] = [(p.value["index"], p.value["score"]) for p in sink.packets]
    assert [i for i, _ in results["litert"]] == [i for i, _ in results["onnxruntime"]]
    assert [s for _, s in results["litert"]] == pytest.approx([s for _, s in results["onnxruntime"]], abs=1e-4)


def test_fit_to_shape_pads_and_cuts():
    assert FitToShape([1, 4])(np.arange(6, dtype=np.float32)).tolist() == [[0, 1, 2, 3]]
    assert FitToShape([1, 1, 2, 2])(np.ones((3, 1))).ravel().tolist() == [1, 1, 1, 0]


def test_topk_without_labels_uses_indices():
    out = TopK(k=2)(np.array([[0.1, 0.7, 0.2]], np.float32))
    assert out["label"] == "1" and out["index"] == 1 and [label for label, _ in out["top"]] == ["1", "2"]


def test_model_and_label_errors_are_clear(tmp_path):
    with pytest.raises(ModelError, match="missing.onnx: model file not found"):
        ModelInfer(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="bad.onnx: onnxruntime cannot load it"):
        ModelInfer(bad)
    (tmp_path / "labels.txt").write_text("cat\ndog\n\n")
    assert read_labels(tmp_path / "labels.txt") == ["cat", "dog"]
    assert read_labels("x, y") == ["x", "y"] and read_labels(None) is None
    with pytest.raises(Exception, match="no such file"):
        read_labels(tmp_path / "nope.txt")


def test_infer_stage_error_names_infer(frames, tiny_model):
    infer = ModelInfer(tiny_model)
    stages = [Stage("preprocess", ImagePreprocess((16, 16))), Stage("infer", infer)]  # wrong size for the model
    with pytest.raises(Exception, match="stage 'infer'") as info:
        Pipeline(frames(3), stages).run()
    assert info.value.stage == "infer"
