"""Small built-in ONNX models made with ``onnx.helper``: for tests, benchmarks and the demo.

They have seeded random weights (they compute something, not anything learned); models that
must be accurate are trained by the apps and the optimizer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def conv_macs(h: int, w: int, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> int:
    """Multiply-accumulates of a same-padded conv layer."""
    return (h // stride) * (w // stride) * cout * (cin // groups) * k * k


def tiny_convnet(
    path: str | Path,
    input_hw: tuple[int, int] = (64, 64),
    channels: tuple[int, ...] = (8, 16, 32),
    classes: int = 10,
    seed: int = 0,
    opset: int = 17,
) -> Path:
    """Write a conv → relu → (stride-2 conv → relu)* → global-avg-pool → gemm → softmax classifier.

    Input ``input`` float32 [1, 3, H, W] in 0..1, output ``probs`` float32 [1, classes].
    Grow ``channels`` and ``input_hw`` for a bigger model (see ``conv_macs``).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    h, w = input_hw
    nodes, inits = [], []
    prev, cin = "input", 3
    for i, cout in enumerate(channels):
        stride = 1 if i == 0 else 2
        wt = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (cin * 9))).astype(np.float32)
        bias = (rng.standard_normal(cout) * 0.01).astype(np.float32)
        inits += [numpy_helper.from_array(wt, f"conv{i}.w"), numpy_helper.from_array(bias, f"conv{i}.b")]
        nodes.append(helper.make_node("Conv", [prev, f"conv{i}.w", f"conv{i}.b"], [f"conv{i}"],
                                      kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[stride, stride],
                                      name=f"conv{i}"))
        nodes.append(helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"], name=f"relu{i}"))
        prev, cin = f"relu{i}", cout
    fc_w = (rng.standard_normal((classes, cin)) * np.sqrt(1.0 / cin)).astype(np.float32)
    fc_b = np.zeros(classes, np.float32)
    inits += [numpy_helper.from_array(fc_w, "fc.w"), numpy_helper.from_array(fc_b, "fc.b")]
    nodes += [
        helper.make_node("GlobalAveragePool", [prev], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1, name="flatten"),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], transB=1, name="fc"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1, name="softmax"),
    ]
    graph = helper.make_graph(
        nodes, "tiny_convnet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, classes])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="ember")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def tiny_convnet_macs(input_hw: tuple[int, int] = (64, 64), channels: tuple[int, ...] = (8, 16, 32),
                      classes: int = 10) -> int:
    h, w = input_hw
    total, cin = 0, 3
    for i, cout in enumerate(channels):
        stride = 1 if i == 0 else 2
        total += conv_macs(h, w, cin, cout, 3, stride)
        h, w, cin = h // stride, w // stride, cout
    return total + cin * classes
