"""Each ONNX op the TFLite export knows, on a random shape, against ONNX Runtime: fp32 to 1e-4,
int8 (full integer, calibrated on other random inputs) to a few quantization steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from sdk.optimize.tflite_export import from_tflite_layout, onnx_to_tflite, to_tflite_layout
from sdk.runtime.backends import load_backend

RNG = np.random.default_rng(7)
C, H, W = 4, int(RNG.integers(6, 10)), int(RNG.integers(6, 10))  # a random feature-map shape
N = helper.make_node


def _c(name: str, value: object, dtype: type = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype), name)


def _w(name: str, *shape: int) -> onnx.TensorProto:
    return _c(name, RNG.standard_normal(shape) * 0.5)


CONV = [N("Conv", ["x", "cw"], ["f"], pads=[1, 1, 1, 1], name="conv")]  # a second feature map "f" (C channels)
CONV_W = [_w("cw", C, C, 3, 3)]

# name → (nodes, initializers, outputs, opset, int8 expected to work)
CASES: dict[str, tuple[list, list, list[str], int, bool]] = {
    "Concat-channels": (CONV + [N("Concat", ["x", "f"], ["y"], axis=1)], CONV_W, ["y"], 13, True),
    "Concat-width": (CONV + [N("Concat", ["x", "f"], ["y"], axis=3)], CONV_W, ["y"], 13, True),
    "Slice-steps": ([N("Slice", ["x", "s", "e", "a", "st"], ["y"])],
                    [_c("s", [1, 0], np.int64), _c("e", [2**62, -1], np.int64), _c("a", [2, 3], np.int64),
                     _c("st", [2, 1], np.int64)], ["y"], 13, True),
    "Split": ([N("Split", ["x", "sp"], ["y0", "y1"], axis=1)], [_c("sp", [1, C - 1], np.int64)], ["y0", "y1"], 13,
              True),
    "Gather": ([N("Gather", ["x", "i"], ["y"], axis=1)], [_c("i", [2, 0, 3, 1], np.int64)], ["y"], 13, True),
    "SpaceToDepth": ([N("Slice", ["x", "s", "e", "a"], ["t"]), N("SpaceToDepth", ["t"], ["y"], blocksize=2)],
                     [_c("s", [0, 0], np.int64), _c("e", [H // 2 * 2, W // 2 * 2], np.int64),
                      _c("a", [2, 3], np.int64)], ["y"], 13, True),
    "Transpose": ([N("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1])], [], ["y"], 13, True),
    "Pad-constant": ([N("Pad", ["x", "p", "v"], ["y"])], [_c("p", [0, 0, 1, 2, 0, 0, 2, 1], np.int64),
                                                          _c("v", 0.5)], ["y"], 13, True),
    "Pad-reflect": ([N("Pad", ["x", "p"], ["y"], mode="reflect")], [_c("p", [0, 0, 1, 1, 0, 0, 1, 1], np.int64)],
                    ["y"], 13, True),
    "Flatten": ([N("Flatten", ["x"], ["y"], axis=1)], [], ["y"], 13, True),
    "Squeeze-Unsqueeze": ([N("ReduceMean", ["x"], ["m"], axes=[2], keepdims=1), N("Squeeze", ["m", "a"], ["s"]),
                           N("Unsqueeze", ["s", "a"], ["y"])], [_c("a", [2], np.int64)], ["y"], 13, True),
    "Sigmoid": ([N("Sigmoid", ["x"], ["y"])], [], ["y"], 13, True),
    "SiLU": ([N("Sigmoid", ["x"], ["s"]), N("Mul", ["x", "s"], ["y"])], [], ["y"], 13, True),
    "Tanh": ([N("Tanh", ["x"], ["y"])], [], ["y"], 13, True),
    "HardSigmoid": ([N("HardSigmoid", ["x"], ["y"], alpha=0.2, beta=0.5)], [], ["y"], 13, True),
    "HardSwish": ([N("HardSwish", ["x"], ["y"])], [], ["y"], 14, True),
    "HardSwish-as-HardSigmoid-Mul": ([N("HardSigmoid", ["x"], ["h"], alpha=1 / 6, beta=0.5),
                                      N("Mul", ["x", "h"], ["y"])], [], ["y"], 13, True),
    "HardSwish-as-Clip-Div-Mul": ([N("Add", ["x", "three"], ["a"]), N("Clip", ["a", "zero", "six"], ["c"]),
                                   N("Mul", ["x", "c"], ["m"]), N("Div", ["m", "six"], ["y"])],
                                  [_c("three", 3.0), _c("zero", 0.0), _c("six", 6.0)], ["y"], 13, True),
    "Clip-any-range": ([N("Clip", ["x", "lo", "hi"], ["y"])], [_c("lo", -0.5), _c("hi", 0.7)], ["y"], 13, True),
    "LeakyRelu": ([N("LeakyRelu", ["x"], ["y"], alpha=0.2)], [], ["y"], 13, True),
    "PRelu": ([N("PRelu", ["x", "sl"], ["y"])], [_c("sl", RNG.random((C, 1, 1)) * 0.5)], ["y"], 13, True),
    "Max": (CONV + [N("Max", ["x", "f"], ["y"])], CONV_W, ["y"], 13, True),
    "Min": (CONV + [N("Min", ["x", "f"], ["y"])], CONV_W, ["y"], 13, True),
    "Div-const": ([N("Div", ["x", "d"], ["y"])], [_c("d", RNG.random((C, 1, 1)) + 0.5)], ["y"], 13, True),
    "Div-tensor": ([N("Sigmoid", ["x"], ["s"]), N("Add", ["s", "one"], ["t"]), N("Div", ["x", "t"], ["y"])],
                   [_c("one", 1.0)], ["y"], 13, True),
    "Pow-2": ([N("Pow", ["x", "two"], ["y"])], [_c("two", 2.0)], ["y"], 13, True),
    "Pow-3-float-island": ([N("Pow", ["x", "e"], ["y"])], [_c("e", 3.0)], ["y"], 13, True),
    "Sqrt": ([N("Sigmoid", ["x"], ["s"]), N("Sqrt", ["s"], ["y"])], [], ["y"], 13, True),
    "Log": ([N("Sigmoid", ["x"], ["s"]), N("Log", ["s"], ["y"])], [], ["y"], 13, True),
    "Exp": ([N("Exp", ["x"], ["y"])], [], ["y"], 13, True),
    "ReduceMean": ([N("ReduceMean", ["x"], ["y"], axes=[2, 3], keepdims=1)], [], ["y"], 13, True),
    "ReduceMax": ([N("ReduceMax", ["x"], ["y"], axes=[1], keepdims=0)], [], ["y"], 13, True),
    "Softmax-channels": ([N("Softmax", ["x"], ["y"], axis=1)], [], ["y"], 13, True),
    "Softmax-height": ([N("Softmax", ["x"], ["y"], axis=2)], [], ["y"], 13, True),
    "Softmax-last": ([N("Softmax", ["x"], ["y"], axis=-1)], [], ["y"], 13, True),
    "Resize-nearest-x2": ([N("Resize", ["x", "", "sc"], ["y"], mode="nearest")], [_c("sc", [1, 1, 2, 2])],
                          ["y"], 13, True),
    "Resize-bilinear-half-pixel": ([N("Resize", ["x", "", "sc"], ["y"], mode="linear")], [_c("sc", [1, 1, 2, 2])],
                                   ["y"], 13, True),
    "Resize-bilinear-align-corners": ([N("Resize", ["x", "", "", "sz"], ["y"], mode="linear",
                                         coordinate_transformation_mode="align_corners")],
                                      [_c("sz", [1, C, 2 * H + 1, 2 * W - 1], np.int64)], ["y"], 13, True),
    "ConvTranspose-k2s2": ([N("ConvTranspose", ["x", "tw", "tb"], ["y"], strides=[2, 2])],
                           [_w("tw", C, 3, 2, 2), _w("tb", 3)], ["y"], 13, True),
    "ConvTranspose-k3s2-same": ([N("ConvTranspose", ["x", "tw"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1])],
                                [_w("tw", C, 5, 3, 3)], ["y"], 13, True),
    "MaxPool-padded": ([N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])], [],
                       ["y"], 13, True),
    "AveragePool-padded": ([N("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                              count_include_pad=1)], [], ["y"], 13, True),
    "BatchNormalization": ([N("Sigmoid", ["x"], ["s"]), N("BatchNormalization", ["s", "g", "b", "mu", "var"], ["y"])],
                           [_c("g", RNG.random(C) + 0.5), _c("b", RNG.standard_normal(C)), _c("mu", RNG.random(C)),
                            _c("var", RNG.random(C) + 0.1)], ["y"], 13, True),
    "Identity-of-initializer": ([N("Identity", ["cw"], ["cw2"]), N("Conv", ["x", "cw"], ["f"], pads=[1, 1, 1, 1]),
                                 N("Conv", ["f", "cw2"], ["y"], pads=[1, 1, 1, 1])], CONV_W, ["y"], 13, True),
    "MatMul-rank3": ([N("Reshape", ["x", "shp"], ["r"]), N("MatMul", ["r", "mw"], ["y"])],
                     [_c("shp", [1, C, H * W], np.int64), _w("mw", H * W, 5)], ["y"], 13, True),
}


def _model(tmp_path: Path, case: str) -> Path:
    nodes, inits, outs, opset, _ = CASES[case]
    nodes = [helper.make_node(n.op_type, n.input, n.output, name=n.name or f"n{i}", domain=n.domain,
                              **{a.name: helper.get_attribute_value(a) for a in n.attribute})
             for i, n in enumerate(nodes)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, W])],
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    return path


def _compare(onnx_path: Path, tfl: Path, xs: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    s = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    pairs = []
    with load_backend(tfl, "litert") as lite:
        for x in xs:
            refs = s.run(None, {"x": x})
            gots = [from_tflite_layout(y) for y in lite.run(to_tflite_layout(x))]
            assert len(gots) == len(refs)
            pairs += list(zip(refs, gots))
    return pairs


def _inputs(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, C, H, W)).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case: str, tmp_path: Path) -> None:
    path = _model(tmp_path, case)
    for ref, got in _compare(path, onnx_to_tflite(path, tmp_path / "m.tflite"), _inputs(2, 1)):
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
    if not CASES[case][4]:
        return
    tfl = onnx_to_tflite(path, tmp_path / "m.int8.tflite", int8=True, calibration=_inputs(24, 2))
    for ref, got in _compare(path, tfl, _inputs(3, 3)):
        span = float(ref.max() - ref.min()) or 1.0
        assert np.abs(got - ref).mean() < 0.02 * span, case  # a few int8 steps of the output range
        assert np.abs(got - ref).max() < 0.15 * span, case
