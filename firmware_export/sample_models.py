"""Small ONNX graphs (onnx.helper, seeded random weights) that together cover every kernel of the C
exporter: used by its tests and by ``bench/firmware.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _w(rng: np.random.Generator, *shape: int) -> np.ndarray:
    fan_in = int(np.prod(shape[1:])) or 1
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def _save(path: Path, nodes: list, inits: list, x_shape: list[int], y_shape: list[int], name: str) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, y_shape)],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="ember-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def dscnn(path: Path, classes: int = 6, channels: int = 16, blocks: int = 1, seed: int = 0) -> Path:
    """KWS-like DS-CNN on [1, 1, 49, 10]: conv, ``blocks`` × (depthwise conv + ReLU6, pointwise conv +
    ReLU, residual add), average and max pooling, global average pool, flatten, gemm, softmax.
    ``channels=64, blocks=4`` is the size of the DS-CNN-S keyword spotter."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(seed)
    c = channels
    t = {"c0.w": _w(rng, c, 1, 5, 3), "c0.b": np.zeros(c, np.float32),
         "fc.w": _w(rng, classes, c), "fc.b": np.zeros(classes, np.float32),
         "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    n = helper.make_node
    nodes = [n("Conv", ["input", "c0.w", "c0.b"], ["c0"], kernel_shape=[5, 3], pads=[2, 1, 2, 1], strides=[2, 1]),
             n("Relu", ["c0"], ["x0"])]
    for i in range(blocks):
        t.update({f"dw{i}.w": _w(rng, c, 1, 3, 3), f"dw{i}.b": (rng.standard_normal(c) * 0.05).astype(np.float32),
                  f"pw{i}.w": _w(rng, c, c, 1, 1), f"pw{i}.b": (rng.standard_normal(c) * 0.05).astype(np.float32)})
        nodes += [
            n("Conv", [f"x{i}", f"dw{i}.w", f"dw{i}.b"], [f"dw{i}"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=c),
            n("Clip", [f"dw{i}", "lo", "hi"], [f"r{i}"]),
            n("Conv", [f"r{i}", f"pw{i}.w", f"pw{i}.b"], [f"pw{i}"], kernel_shape=[1, 1]),
            n("Relu", [f"pw{i}"], [f"p{i}"]),
            n("Add", [f"p{i}", f"x{i}"], [f"x{i + 1}"]),
        ]
    nodes += [
        n("AveragePool", [f"x{blocks}"], ["ap"], kernel_shape=[2, 2], strides=[2, 2]),
        n("MaxPool", ["ap"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
        n("GlobalAveragePool", ["mp"], ["gap"]),
        n("Flatten", ["gap"], ["flat"], axis=1),
        n("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], transB=1),
        n("Softmax", ["logits"], ["probs"], axis=1),
    ]
    inits = [numpy_helper.from_array(v, k) for k, v in t.items()]
    return _save(path, nodes, inits, [1, 1, 49, 10], [1, classes], "dscnn")


def conv1d_net(path: Path, classes: int = 4, seed: int = 1) -> Path:
    """1-D signal net on [1, 4, 64]: Conv1d + ReLU, strided Conv1d, ReduceMean over time, gemm, softmax."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(seed)
    t = {"a.w": _w(rng, 8, 4, 5), "a.b": (rng.standard_normal(8) * 0.05).astype(np.float32),
         "b.w": _w(rng, 12, 8, 3), "b.b": np.zeros(12, np.float32),
         "fc.w": _w(rng, classes, 12), "fc.b": (rng.standard_normal(classes) * 0.1).astype(np.float32)}
    inits = [numpy_helper.from_array(v, k) for k, v in t.items()]
    n = helper.make_node
    nodes = [
        n("Conv", ["input", "a.w", "a.b"], ["a"], kernel_shape=[5], pads=[2, 2]),
        n("Relu", ["a"], ["ra"]),
        n("Conv", ["ra", "b.w", "b.b"], ["b"], kernel_shape=[3], pads=[1, 1], strides=[2]),
        n("Relu", ["b"], ["rb"]),
        n("ReduceMean", ["rb"], ["m"], axes=[2], keepdims=0),
        n("Gemm", ["m", "fc.w", "fc.b"], ["logits"], transB=1),
        n("Softmax", ["logits"], ["probs"], axis=1),
    ]
    return _save(path, nodes, inits, [1, 4, 64], [1, classes], "conv1d_net")


def flatten_net(path: Path, classes: int = 5, seed: int = 2) -> Path:
    """Standalone ReLU6 (clip on the input) → conv → flatten of a spatial map (NCHW order: a transpose
    in NHWC) → standalone ReLU → gemm (+ fused ReLU) → gemm."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(seed)
    t = {"c.w": _w(rng, 4, 2, 3, 3), "c.b": np.zeros(4, np.float32),
         "f1.w": _w(rng, 16, 4 * 4 * 4), "f1.b": (rng.standard_normal(16) * 0.05).astype(np.float32),
         "f2.w": _w(rng, classes, 16), "f2.b": np.zeros(classes, np.float32),
         "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    inits = [numpy_helper.from_array(v, k) for k, v in t.items()]
    n = helper.make_node
    nodes = [
        n("Clip", ["input", "lo", "hi"], ["x6"]),
        n("Conv", ["x6", "c.w", "c.b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
        n("Flatten", ["c"], ["flat"], axis=1),
        n("Relu", ["flat"], ["rflat"]),
        n("Gemm", ["rflat", "f1.w", "f1.b"], ["h"], transB=1),
        n("Relu", ["h"], ["rh"]),
        n("Gemm", ["rh", "f2.w", "f2.b"], ["probs"], transB=1),
    ]
    return _save(path, nodes, inits, [1, 2, 8, 8], [1, classes], "flatten_net")


def rows_net(path: Path, classes: int = 3, seed: int = 3) -> Path:
    """Layer pairs the arena planner runs row by row on [1, 2, 20, 20]: conv → max pool, then depthwise
    conv (channel multiplier 2) → average pool; then pointwise conv, global average pool, gemm, softmax."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(seed)
    t = {"c.w": _w(rng, 8, 2, 3, 3), "c.b": (rng.standard_normal(8) * 0.05).astype(np.float32),
         "d.w": _w(rng, 16, 1, 3, 3), "d.b": (rng.standard_normal(16) * 0.05).astype(np.float32),
         "p.w": _w(rng, 8, 16, 1, 1), "p.b": np.zeros(8, np.float32),
         "fc.w": _w(rng, classes, 8), "fc.b": np.zeros(classes, np.float32)}
    inits = [numpy_helper.from_array(v, k) for k, v in t.items()]
    n = helper.make_node
    nodes = [
        n("Conv", ["input", "c.w", "c.b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        n("Relu", ["c"], ["rc"]),
        n("MaxPool", ["rc"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
        n("Conv", ["mp", "d.w", "d.b"], ["d"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8),
        n("AveragePool", ["d"], ["ap"], kernel_shape=[2, 2], strides=[2, 2]),
        n("Conv", ["ap", "p.w", "p.b"], ["pw"], kernel_shape=[1, 1]),
        n("GlobalAveragePool", ["pw"], ["gap"]),
        n("Flatten", ["gap"], ["flat"], axis=1),
        n("Gemm", ["flat", "fc.w", "fc.b"], ["probs"], transB=1),
    ]
    return _save(path, nodes, inits, [1, 2, 20, 20], [1, classes], "rows_net")


def to_int8(onnx_path: Path, out: Path, shape: list[int], seed: int = 0) -> Path:
    """Full-integer int8 .tflite through the project's converter, calibrated on seeded data."""
    from sdk.optimize.tflite_export import onnx_to_tflite

    rng = np.random.default_rng(seed)
    cal = [rng.standard_normal(shape).astype(np.float32) for _ in range(16)]
    return onnx_to_tflite(onnx_path, out, int8=True, calibration=cal)


def insert_unary(tflite: Path, out: Path, ops: list[tuple[str, float, int, dict]], after: int | None = None) -> Path:
    """``tflite`` with a chain of elementwise int8 ops spliced in after the output of operator ``after``
    (None: after the model's input, so the ops see the whole int8 range):
    ``ops`` = (BuiltinOperator name, output scale, output zero point, option fields). The project's ONNX
    converter has no such activations, so test models get them at the flatbuffer level."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    m = s.ModelT.InitFromObj(s.Model.GetRootAsModel(Path(tflite).read_bytes(), 0))
    sg = m.subgraphs[0]
    first = src = sg.inputs[0] if after is None else sg.operators[after].outputs[0]
    readers = [o for o in sg.operators if src in list(o.inputs)]
    for code, scale, zp, fields in ops:
        oc = s.OperatorCodeT()
        oc.builtinCode = oc.deprecatedBuiltinCode = getattr(s.BuiltinOperator, code)
        oc.version = {"LOGISTIC": 2, "TANH": 2, "LEAKY_RELU": 2, "HARD_SWISH": 1}.get(code, 1)
        m.operatorCodes.append(oc)
        t = s.TensorT()
        t.shape, t.type, t.name = list(sg.tensors[src].shape), s.TensorType.INT8, f"{code.lower()}_out"
        t.buffer = len(m.buffers)
        m.buffers.append(s.BufferT())
        t.quantization = s.QuantizationParametersT()
        t.quantization.scale, t.quantization.zeroPoint = [scale], [zp]
        sg.tensors.append(t)
        op = s.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = len(m.operatorCodes) - 1, [src], [len(sg.tensors) - 1]
        if fields:
            opts = getattr(s, "".join(w.capitalize() for w in code.split("_")) + "OptionsT")()
            for k, v in fields.items():
                setattr(opts, k, v)
            op.builtinOptionsType = getattr(s.BuiltinOptions, type(opts).__name__[:-1])
            op.builtinOptions = opts
        sg.operators.insert(sg.operators.index(readers[0]) if readers else len(sg.operators), op)
        src = len(sg.tensors) - 1
    for r in readers:
        r.inputs = [src if i == first else i for i in r.inputs]
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    Path(out).write_bytes(bytes(b.Output()))
    return Path(out)


def mul_sub_net(path: Path, seed: int = 5) -> Path:
    """Two convolutions multiplied elementwise, minus a per-channel constant, times a per-channel
    constant, then global average -> Gemm: MUL (same shapes and broadcast) and SUB. Input [1, 3, 9, 7]."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(_w(rng, 6, 3, 3, 3), "w0"), numpy_helper.from_array(_w(rng, 6, 3, 1, 1), "w1"),
             numpy_helper.from_array(rng.standard_normal((1, 6, 1, 1)).astype(np.float32), "k0"),
             numpy_helper.from_array(rng.uniform(0.5, 2, (1, 6, 1, 1)).astype(np.float32), "k1"),
             numpy_helper.from_array(_w(rng, 4, 6).T.copy(), "fw"), numpy_helper.from_array(np.zeros(4, np.float32), "fb")]
    nodes = [helper.make_node("Conv", ["input", "w0"], ["c0"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["input", "w1"], ["c1"]),
             helper.make_node("Mul", ["c0", "c1"], ["m0"]), helper.make_node("Sub", ["m0", "k0"], ["s0"]),
             helper.make_node("Mul", ["s0", "k1"], ["m1"]), helper.make_node("GlobalAveragePool", ["m1"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]), helper.make_node("Gemm", ["f", "fw", "fb"], ["probs"])]
    return _save(path, nodes, inits, [1, 3, 9, 7], [1, 4], "mul_sub_net")
