"""ONNX precision tiers: int8 static (QDQ) with a selectable calibration method and excluded
nodes, int8 dynamic, and the op census that decides whether dynamic quantization fits.

fp16 is :func:`sdk.models.variants.make_fp16` (fp32 inputs/outputs kept).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ModelError
from sdk.vocab import CALIBRATION_METHODS

# Ops that ONNX Runtime's static QDQ quantizer turns into int8 kernels (weighted layers first).
WEIGHTED_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")
# Ops where dynamic quantization (int8 weights, activations quantized on the fly) pays off.
DYNAMIC_OPS = ("MatMul", "Gemm", "LSTM", "GRU", "RNN", "Attention")


def op_census(model_path: str | Path) -> Counter[str]:
    """How many nodes of each op type the model has."""
    import onnx

    return Counter(n.op_type for n in onnx.load(str(model_path), load_external_data=False).graph.node)


def dynamic_fits(census: Counter[str]) -> bool:
    """Dynamic int8 suits models whose weighted ops are mostly MatMul/Gemm/RNN (not convs)."""
    dyn = sum(census[o] for o in DYNAMIC_OPS)
    return dyn > 0 and dyn >= census["Conv"] + census["ConvTranspose"]


def quantizable_nodes(model_path: str | Path) -> list[str]:
    """Names of the weighted nodes (Conv/Gemm/MatMul) in graph order: the layers of a sensitivity scan."""
    import onnx

    return [n.name for n in onnx.load(str(model_path)).graph.node if n.op_type in WEIGHTED_OPS and n.name]


def float_region(model_path: str | Path, nodes: Sequence[str]) -> list[str]:
    """``nodes`` plus every node after them up to the next weighted layer (their activations, concats...):
    a layer kept in float must not hand a wide-range output to an int8 activation."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    region, todo = list(nodes), [n for n in graph.node if n.name in set(nodes)]
    while todo:
        for out in todo.pop().output:
            for c in consumers.get(out, []):
                if c.op_type not in WEIGHTED_OPS and c.name and c.name not in region:
                    region.append(c.name)
                    todo.append(c)
    return region


class _Reader:
    """An ONNX Runtime ``CalibrationDataReader`` over batch-1 float arrays."""

    def __init__(self, name: str, samples: Iterable[np.ndarray]) -> None:
        self._it = iter({name: np.asarray(a, np.float32)} for a in samples)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def _input_name(model_path: str | Path) -> str:
    import onnx

    g = onnx.load(str(model_path), load_external_data=False).graph
    inits = {i.name for i in g.initializer}
    return next(i.name for i in g.input if i.name not in inits)


def quantize_static_int8(src: str | Path, dst: str | Path, calibration: Iterable[np.ndarray] | None, *,
                         method: str = "minmax", per_channel: bool = True,
                         nodes_to_exclude: Sequence[str] = (), nodes_to_quantize: Sequence[str] | None = None,
                         cache: str | Path | None = None) -> Path:
    """int8 QDQ model at ``dst``: per-channel symmetric int8 weights, asymmetric uint8 activations
    (U8S8: ONNX Runtime's x86 CPU provider fuses Conv/Sigmoid/Mul QDQ groups into integer kernels
    only for uint8 activations; with int8 ones it runs them in float between Q/DQ nodes).

    ``calibration``: batch-1 float arrays of the model input (may be None when ``cache`` holds the
    ranges of an earlier run with the same method: the sensitivity scan reuses them).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    if method not in CALIBRATION_METHODS:
        raise ModelError(f"unknown calibration method {method!r}; use one of {', '.join(CALIBRATION_METHODS)}")
    CalibrationDataReader.register(_Reader)
    reader = _Reader(_input_name(src), calibration) if calibration is not None else None
    calib = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
             "percentile": CalibrationMethod.Percentile}[method]
    extra: dict[str, Any] = {"ActivationSymmetric": False, "WeightSymmetric": True}
    if method == "percentile":
        extra["CalibPercentile"] = 99.99
    kwargs: dict[str, Any] = {}
    params = inspect.signature(quantize_static).parameters
    if cache is not None and "calibration_cache_path" in params:
        kwargs["calibration_cache_path"] = str(cache)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if "calibration_data_reader_tmp" in params:
            kwargs["calibration_data_reader_tmp"] = tmp
        try:
            with _quiet_root_logger():
                quantize_static(str(src), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                nodes_to_exclude=list(nodes_to_exclude) or None,
                                nodes_to_quantize=list(nodes_to_quantize) if nodes_to_quantize is not None
                                else None, calibrate_method=calib, extra_options=extra, **kwargs)
        except Exception as e:  # noqa: BLE001 - ORT raises many types; report which model and why
            raise ModelError(f"{src}: int8 static quantization failed: {str(e).splitlines()[0][:300]}") from None
    drop_unused_initializers(dst)
    return dst


def quantize_dynamic_int8(src: str | Path, dst: str | Path) -> Path:
    """int8 weights, activations quantized at run time (MatMul/Gemm/RNN layers)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        with _quiet_root_logger():
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8,
                             op_types_to_quantize=list(DYNAMIC_OPS))
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"{src}: int8 dynamic quantization failed: {str(e).splitlines()[0][:300]}") from None
    drop_unused_initializers(dst)
    return dst


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """ONNX Runtime's quantizer logs advice ("consider pre-processing") on the root logger."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def drop_unused_initializers(path: Path) -> None:
    """Remove initializers no node reads (the quantizer leaves folded constants behind)."""
    import onnx

    model = onnx.load(str(path))
    used = {name for n in model.graph.node for name in n.input} | {o.name for o in model.graph.output}
    unused = [i for i in model.graph.initializer if i.name not in used]
    if unused:
        for init in unused:
            model.graph.initializer.remove(init)
        onnx.save(model, str(path))
