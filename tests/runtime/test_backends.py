"""Real sessions on real small models: agreement across backends, clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from sdk.errors import BackendError
from sdk.runtime.backends import available_backends, get_backend, load_backend
from sdk.runtime.backends.tinygrad import strip_unused_opsets


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    with load_backend(path, "onnxruntime") as m:
        return m.run(x)[0]


@pytest.fixture(scope="module")
def tinygrad_models(model_folder: Path):
    """fp32 and int8 on tinygrad, compiled once for the module (compiling takes seconds)."""
    models = {t: load_backend(model_folder / f"model.{t}.onnx", "tinygrad") for t in ("fp32", "int8")}
    for m in models.values():
        m.warmup()
    yield models
    for m in models.values():
        m.close()


def test_all_backends_available_here() -> None:
    assert available_backends() == ["onnxruntime", "litert", "tinygrad"]


def test_onnxruntime_describes_and_runs(model_folder: Path, inputs) -> None:
    m = load_backend(model_folder / "model.fp32.onnx", "onnxruntime", threads=2,
                     session_options={"graph_optimization_level": "basic", "enable_cpu_mem_arena": False})
    assert [(s.name, s.shape, s.dtype) for s in m.inputs] == [("input", (1, 3, 32, 32), "float32")]
    assert [(s.name, s.shape) for s in m.outputs] == [("probs", (1, 10))]
    (y,) = m.run({"input": inputs[0]})
    assert y.shape == (1, 10) and abs(float(y.sum()) - 1.0) < 1e-5
    assert "CPUExecutionProvider" in m.providers
    m.close()
    with pytest.raises(BackendError, match="closed"):
        m.run(inputs[0])


def test_unknown_session_option_is_a_clear_error(model_folder: Path) -> None:
    with pytest.raises(BackendError, match="no_such_option"):
        load_backend(model_folder / "model.fp32.onnx", "onnxruntime", session_options={"no_such_option": 1})


@pytest.mark.parametrize("tier,tol", [("fp32", 1e-5), ("int8", 2.5e-2)])
def test_tinygrad_matches_onnxruntime(model_folder: Path, tinygrad_models, inputs, tier: str, tol: float) -> None:
    for x in inputs[:3]:
        ref = _ort(model_folder / f"model.{tier}.onnx", x)
        got = tinygrad_models[tier].run(x)[0]
        assert np.abs(ref - got).max() <= tol


def test_tinygrad_serves_while_another_variant_warms_up(model_folder: Path, tinygrad_models, inputs) -> None:
    """A hot swap: one tinygrad variant serves frames while the next one loads and compiles in another
    thread. Without the backend's lock tinygrad fails the serving thread ("usage of device ...")."""
    import threading

    serving = tinygrad_models["fp32"]
    ref = [serving.run(x)[0] for x in inputs[:4]]
    results: list[np.ndarray] = []
    errors: list[Exception] = []

    def serve() -> None:
        try:
            results.extend(serving.run(inputs[i % 4])[0] for i in range(40))
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    t = threading.Thread(target=serve)
    t.start()
    fresh = load_backend(model_folder / "model.int8.onnx", "tinygrad")
    fresh.warmup()
    t.join(120)
    assert not errors, errors
    assert all(np.array_equal(r, ref[i % 4]) for i, r in enumerate(results)) and len(results) == 40
    assert np.abs(fresh.run(inputs[0])[0] - tinygrad_models["int8"].run(inputs[0])[0]).max() == 0
    fresh.close()


def test_int8_close_to_fp32(model_folder: Path, inputs) -> None:
    for x in inputs[:3]:
        assert np.abs(_ort(model_folder / "model.int8.onnx", x) - _ort(model_folder / "model.fp32.onnx", x)).max() < 0.05


def test_strip_unused_opsets(model_folder: Path, tmp_path: Path) -> None:
    model = onnx.load(str(model_folder / "model.int8.onnx"))
    model.opset_import.extend([onnx.helper.make_opsetid("ai.onnx.preview", 1),
                               onnx.helper.make_opsetid("com.microsoft", 1)])
    removed = strip_unused_opsets(model)
    assert set(removed) == {"ai.onnx.preview", "com.microsoft"}
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}


def test_litert_matches_onnxruntime(model_folder: Path, model_src: Path, tmp_path: Path, inputs) -> None:
    from sdk.optimize.tflite_export import onnx_to_tflite

    fp32 = onnx_to_tflite(model_src, tmp_path / "m.tflite")
    i8 = onnx_to_tflite(model_src, tmp_path / "m.int8.tflite", int8=True, calibration=inputs[:16])
    m32, m8 = load_backend(fp32, "litert", threads=1), load_backend(i8, "litert")
    assert m32.inputs[0].shape == (1, 32, 32, 3)  # the .tflite runs NHWC
    assert m8.inputs[0].dtype == "int8" and m8.inputs[0].quant is not None
    for x in inputs[:3]:
        ref = _ort(model_src, x)
        nhwc = x.transpose(0, 2, 3, 1)
        assert np.abs(m32.run(nhwc)[0] - ref).max() < 1e-4
        assert np.abs(m8.run(nhwc)[0] - ref).max() < 0.05
    raw = load_backend(i8, "litert", raw=True).run(np.zeros((1, 32, 32, 3), np.int8))[0]
    assert raw.dtype == np.int8


def _bad_files(tmp: Path, good: Path) -> dict[str, Path]:
    data = good.read_bytes()
    (tmp / "trunc.onnx").write_bytes(data[: len(data) // 3])
    (tmp / "trunc.tflite").write_bytes(b"TFL3" + data[:200])
    (tmp / "text.onnx").write_text("this is not a model\n")
    return {"truncated": tmp / "trunc.onnx", "not a model": tmp / "text.onnx", "missing": tmp / "nope.onnx",
            "truncated tflite": tmp / "trunc.tflite"}


@pytest.mark.parametrize("backend", ["onnxruntime", "litert", "tinygrad"])
def test_bad_files_give_backend_error_naming_the_file(backend: str, model_folder: Path, tmp_path: Path) -> None:
    for what, path in _bad_files(tmp_path, model_folder / "model.fp32.onnx").items():
        with pytest.raises(BackendError) as info:
            load_backend(path, backend).run(np.zeros((1, 3, 32, 32), np.float32))
        assert str(path) in str(info.value), what
        assert "Traceback" not in str(info.value)


def test_unknown_backend() -> None:
    with pytest.raises(BackendError, match="unknown backend 'tensorrt'"):
        get_backend("tensorrt")


def test_wrong_input_count_is_clear(model_folder: Path) -> None:
    m = load_backend(model_folder / "model.fp32.onnx")
    with pytest.raises(BackendError, match="got 2 input"):
        m.run([np.zeros((1, 3, 32, 32), np.float32)] * 2)
