"""The five public models (``../shared/models``) as a new user brings them: each is upgraded,
given a static shape and converted to a .tflite that matches ONNX Runtime; YOLOX-nano's int8
tier (opset 11 as it comes) is a model ONNX Runtime runs. Speed/accuracy: bench/optimize_public.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from sdk.optimize.prepare import prepare_model
from sdk.optimize.quantize import quantize_static_int8
from sdk.optimize.tflite_export import from_tflite_layout, onnx_to_tflite, to_tflite_layout
from sdk.runtime.backends import load_backend
from tests.conftest import SHARED

PUBLIC = {  # file → (static input shape, input scale, opset as shipped)
    "yolox_nano.onnx": ([1, 3, 416, 416], 255.0, 11),
    "public_onnx/embedding_model.onnx": ([1, 76, 32, 1], 4.0, 13),
    "public_onnx/melspectrogram.onnx": ([1, 8000], 3000.0, 13),
    "public_onnx/ch_PP-OCRv4_det_infer.onnx": ([1, 3, 96, 128], 2.0, 12),
    "public_onnx/ch_ppocr_mobile_v2.0_cls_infer.onnx": ([1, 3, 48, 192], 1.0, 11),
}


@pytest.fixture(scope="module")
def models() -> Path:
    path = SHARED / "models"
    if not (path / "yolox_nano.onnx").is_file():
        pytest.skip(f"public models not found at {path}")
    return path


def _ort(path: Path, x: np.ndarray) -> list[np.ndarray]:
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_model_prepares_and_converts(models: Path, name: str, tmp_path: Path) -> None:
    shape, scale, opset = PUBLIC[name]
    info = prepare_model(models / name, tmp_path / "p.onnx", shape)
    assert info["opset"] == [opset, max(opset, 13)] and info["input_shape"] == shape
    x = (np.random.default_rng(0).random(shape, dtype=np.float32) * scale).astype(np.float32)
    ref = _ort(tmp_path / "p.onnx", x)
    original = _ort(models / name, x)  # the prepared model computes what the shipped one does
    for a, b in zip(ref, original):
        np.testing.assert_allclose(a, b, atol=1e-3 * (np.abs(b).max() + 1))
    with load_backend(onnx_to_tflite(tmp_path / "p.onnx", tmp_path / "m.tflite"), "litert") as lite:
        got = [from_tflite_layout(y) for y in lite.run(to_tflite_layout(x))]
    for a, b in zip(got, ref):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-4 * (np.abs(b).max() + 1))


def test_yolox_int8_tier_is_a_valid_model(models: Path, tmp_path: Path) -> None:
    prepare_model(models / "yolox_nano.onnx", tmp_path / "p.onnx", [1, 3, 416, 416])
    rng = np.random.default_rng(1)
    cal = [(rng.random((1, 3, 416, 416), dtype=np.float32) * 255) for _ in range(2)]
    quantize_static_int8(tmp_path / "p.onnx", tmp_path / "q.onnx", cal)
    out = _ort(tmp_path / "q.onnx", cal[0])[0]  # "INVALID_GRAPH ... zero point" before the opset upgrade
    assert out.shape == (1, 3549, 85) and np.isfinite(out).all()


def test_mel_front_end_fp16_tier_keeps_the_power_spectrum_in_float32(models: Path, tmp_path: Path) -> None:
    from sdk.models.variants import make_fp16
    from sdk.optimize.data import Dataset
    from sdk.optimize.tiers import fp16_builder

    prepare_model(models / "public_onnx/melspectrogram.onnx", tmp_path / "p.onnx", [1, 8000])
    x = (np.random.default_rng(2).standard_normal((4, 8000)) * 3000).astype(np.float32)  # int16-scale audio
    assert not np.isfinite(_ort(make_fp16(tmp_path / "p.onnx", tmp_path / "plain.onnx"), x[:1])[0]).all()
    extra = fp16_builder(tmp_path / "p.onnx", Dataset(x[:2]))(tmp_path / "fp16.onnx")
    assert {"MatMul_15", "Conv_2", "Conv_3"} <= set(extra["float32_nodes"])  # STFT, power, mel filterbank
    for xi in x[2:]:  # samples the range check did not see
        ref, got = _ort(tmp_path / "p.onnx", xi[None])[0], _ort(tmp_path / "fp16.onnx", xi[None])[0]
        np.testing.assert_allclose(got, ref, atol=0.05 * np.abs(ref).max())
