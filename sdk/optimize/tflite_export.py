"""ONNX → ``.tflite`` without TensorFlow: fp32, or full-integer int8 calibrated on sample inputs.

Layout: ONNX is channels-first, TFLite channels-last. Rank-4 inputs ``[N, C, H, W]`` become
``[N, H, W, C]``, rank-3 inputs ``[N, C, L]`` become ``[N, L, C]`` (1-D layers run as 2-D ones
with H = 1); outputs of rank ≥ 3 are channels-last too (see :func:`to_tflite_layout`). Rank-2
tensors are unchanged. Batch size is fixed to 1.

Supported ONNX ops: Conv (1-D/2-D, depthwise), Gemm, MatMul(+Add), Relu, Clip (→ RELU6/RELU),
Add/Sub/Mul, MaxPool, AveragePool, GlobalAveragePool, ReduceMean, Flatten, Reshape, Softmax,
BatchNormalization (folded into the preceding Conv), Identity/Dropout. Any other op raises
:class:`~sdk.errors.ExportError` naming it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ExportError
from sdk.optimize.tflite_ir import Graph, serialize
from sdk.optimize.tflite_ops import Converter


def to_tflite_layout(x: np.ndarray) -> np.ndarray:
    """An ONNX-layout array as the converted model expects it (NCHW → NHWC, NCL → NLC)."""
    x = np.asarray(x)
    if x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    if x.ndim == 3:
        return np.ascontiguousarray(x.transpose(0, 2, 1))
    return x


def from_tflite_layout(x: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_tflite_layout` (NHWC → NCHW, NLC → NCL)."""
    x = np.asarray(x)
    if x.ndim == 4:
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    if x.ndim == 3:
        return np.ascontiguousarray(x.transpose(0, 2, 1))
    return x


def onnx_to_tflite(onnx_path: str | Path, out_path: str | Path, int8: bool = False,
                   calibration: Iterable[Any] | None = None, float_nodes: Collection[str] = ()) -> Path:
    """Convert ``onnx_path`` to a ``.tflite`` at ``out_path`` and return the path.

    With ``int8=True`` the model is fully integer (int8 input/output, per-channel int8 conv
    weights, int32 biases), calibrated on ``calibration``: float arrays in the ONNX (NCHW) layout,
    one per input (or dicts input name → array for several inputs). ``float_nodes``: ONNX node
    names whose ops stay float in the int8 model (between DEQUANTIZE and QUANTIZE ops).
    """
    graph = onnx_to_graph(onnx_path)
    if int8:
        if calibration is None:
            raise ExportError(f"{onnx_path}: int8 export needs calibration data (float NCHW arrays)")
        from sdk.optimize.tflite_quant import quantize_graph
        quantize_graph(graph, calibration, float_nodes)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(serialize(graph, description=f"ember: {Path(onnx_path).name}"))
    return out


def onnx_to_graph(onnx_path: str | Path) -> Graph:
    """Convert an ONNX file to a float :class:`Graph` (the layout described in the module doc)."""
    import onnx

    try:
        model = onnx.load(str(onnx_path))
    except Exception as e:
        raise ExportError(f"{onnx_path}: not a readable ONNX model ({e})") from e
    return Converter(model, str(onnx_path)).run()


SUPPORTED = Converter.supported()
