"""Make any public ONNX model fit for quantization and conversion, before any tier is built.

1. **Opset upgrade**: per-channel QDQ needs opset ≥ :data:`MIN_OPSET` (an int8 model quantized at
   opset 11 is one that ONNX Runtime itself refuses); older models go through ONNX's version
   converter. A model that cannot be upgraded raises :class:`~sdk.errors.ModelError` naming the op.
2. **Static shapes**: symbolic/unknown input dimensions are taken from the data (every sample must
   agree) or from an explicit shape (``--input-shape NAME=1x3x320x320``); the batch axis becomes 1.
   The tiers are built at that shape (LiteRT and ``export-c`` need static shapes) and the manifest
   records it.
3. **ONNX Runtime's quantization pre-processing** (symbolic shape inference, graph optimization:
   constant folding, Conv+BN fusion), as its docs recommend before ``quantize_static``.

    from sdk.optimize.prepare import declared_input, resolve_shape, prepare_model
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ModelError

log = logging.getLogger(__name__)
MIN_OPSET = 13  # per-channel QuantizeLinear/DequantizeLinear (axis attribute) arrived in opset 13

ShapeSpec = Mapping[str, Sequence[int]] | Sequence[int] | str | None


def declared_input(model: Any) -> tuple[str, list[int | None]]:
    """(name, dims) of the model's single data input; ``None`` for a symbolic/unknown dimension."""
    g = model.graph
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise ModelError(f"the model has {len(inputs)} inputs {[i.name for i in inputs]}; ember optimize "
                         "handles single-input models")
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in inputs[0].type.tensor_type.shape.dim]
    return inputs[0].name, dims


def parse_input_shape(spec: ShapeSpec, name: str) -> list[int] | None:
    """``"x=1x3x320x320"``, ``"1x3x320x320"``, ``{"x": [1, 3, 320, 320]}`` or ``[1, 3, 320, 320]``."""
    if spec is None:
        return None
    if isinstance(spec, str):
        key, _, dims = spec.rpartition("=")
        if key and key != name:
            raise ModelError(f"--input-shape names input {key!r}; the model's input is {name!r}")
        try:
            return [int(d) for d in dims.lower().split("x")]
        except ValueError:
            raise ModelError(f"--input-shape {spec!r}: write NAME=1x3x320x320 (integers joined by x)") from None
    if isinstance(spec, Mapping):
        if name not in spec:
            raise ModelError(f"input_shape has {sorted(spec)}; the model's input is {name!r}")
        spec = spec[name]
    return [int(d) for d in spec]


def resolve_shape(name: str, declared: list[int | None], samples: Sequence[tuple[str, tuple[int, ...]]],
                  override: ShapeSpec = None) -> list[int]:
    """The static input shape: fixed dims as declared, the batch axis 1, other symbolic dims from
    ``override`` or else from the sample shapes (``(source, per-sample shape)``), which must agree."""
    fixed = parse_input_shape(override, name)
    if fixed is not None:
        if len(fixed) != len(declared) or any(d is not None and d != f for d, f in zip(declared[1:], fixed[1:])):
            raise ModelError(f"input shape {fixed} does not fit input {name!r} declared as "
                             f"{_show(declared)} (rank and fixed dimensions must match)")
        if any(f <= 0 for f in fixed):
            raise ModelError(f"input shape {fixed}: every dimension must be a positive integer")
        return [1, *fixed[1:]]
    if not samples and None in declared[1:]:
        raise ModelError(f"input {name!r} is {_show(declared)}: give its static shape with --input-shape "
                         f"{name}=1x3x416x416 (or input_shape=...)")
    shapes = {shape for _, shape in samples}
    if len(shapes) > 1:
        raise ModelError(f"input {name!r} {_show(declared)} has dynamic dimensions and the samples disagree: "
                         + ", ".join(f"{src} {shape}" for src, shape in samples)
                         + "; give samples of one shape or fix it with --input-shape NAME=1x3x320x320")
    got = next(iter(shapes), None)
    if got is None or len(got) != len(declared) - 1:
        raise ModelError(f"input {name!r} is {_show(declared)}; samples have shape {got} "
                         "(one sample = input without the batch axis)")
    return [1, *[d if d is not None else g for d, g in zip(declared[1:], got)]]


def _show(dims: Sequence[int | None]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def upgrade_opset(model: Any, target: int = MIN_OPSET) -> tuple[Any, int]:
    """``(model at opset ≥ target, original opset)``; ModelError naming the op that cannot be upgraded."""
    from onnx import version_converter

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    if opset >= target:
        return model, opset
    if opset < 7:
        raise ModelError(f"the model uses ONNX opset {opset}; opsets before 7 cannot be upgraded, re-export "
                         f"it with opset ≥ {target}")
    try:
        return version_converter.convert_version(model, target), opset
    except Exception as e:  # noqa: BLE001 - the converter raises RuntimeError/ValueError with C++ text
        text = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        op = next((n.op_type for n in model.graph.node if n.op_type in text), None)
        raise ModelError(f"cannot upgrade the model from opset {opset} to {target}"
                         f"{f' (op {op})' if op else ''}: {text}; re-export it with opset ≥ {target}") from None


def fix_input_shape(model: Any, shape: Sequence[int]) -> Any:
    """Set the input dims, forget every inferred shape (outputs too) so they are inferred again."""
    name = declared_input(model)[0]
    inp = next(i for i in model.graph.input if i.name == name)
    for d, v in zip(inp.type.tensor_type.shape.dim, shape):
        d.Clear()
        d.dim_value = int(v)
    for o in model.graph.output:
        for d in o.type.tensor_type.shape.dim:
            d.Clear()
    del model.graph.value_info[:]
    return model


def prepare_model(src: str | Path, dst: str | Path, input_shape: Sequence[int]) -> dict[str, Any]:
    """Write the upgraded, static-shape, pre-processed model to ``dst``; return what was done."""
    import onnx

    try:
        model = onnx.load(str(src))
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"{src}: not a readable ONNX model ({e})") from None
    model, opset = upgrade_opset(model)
    model = fix_input_shape(model, input_shape)
    info: dict[str, Any] = {"opset": [opset, max(opset, MIN_OPSET)], "input_shape": list(input_shape)}
    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "fixed.onnx"
        onnx.save(model, str(mid))
        info["preprocess"] = _preprocess(mid, Path(dst))
    if info["preprocess"] == "none":
        onnx.save(onnx.shape_inference.infer_shapes(model), str(dst))
    strip_unused_opsets(Path(dst))
    _check_runs(Path(dst), input_shape)
    return info


def _preprocess(src: Path, dst: Path) -> str:
    """ONNX Runtime's ``quant_pre_process``; without symbolic shape inference where that fails."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from sdk.optimize.quantize import _quiet_root_logger

    last = ""
    for kind, kwargs in (("full", {}), ("no-symbolic-shape", {"skip_symbolic_shape": True})):
        try:
            with _quiet_root_logger():
                quant_pre_process(str(src), str(dst), **kwargs)
            return kind
        except Exception as e:  # noqa: BLE001 - symbolic shape inference asserts on some exporters' graphs
            last = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            log.info("quantization pre-processing (%s) failed: %s", kind, last)
    log.warning("ONNX Runtime's quantization pre-processing failed (%s); quantizing the model as it is", last)
    return "none"


def strip_unused_opsets(path: Path) -> None:
    """Drop opset imports no node uses (ONNX Runtime's optimizer adds several; tinygrad rejects them)."""
    import onnx

    model = onnx.load(str(path))
    used = {n.domain for n in model.graph.node} | {""}
    keep = [o for o in model.opset_import if o.domain in used or o.domain == "ai.onnx"]
    if len(keep) != len(model.opset_import):
        del model.opset_import[:]
        model.opset_import.extend(keep)
        onnx.save(model, str(path))


def _check_runs(path: Path, shape: Sequence[int]) -> None:
    import onnxruntime as ort

    try:
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        s.run(None, {s.get_inputs()[0].name: np.zeros(shape, np.float32)})
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"the model does not run at input shape {list(shape)} "
                         f"({str(e).splitlines()[0][:200]}); pass the shape it was made for "
                         "with --input-shape NAME=1x3x320x320") from None
