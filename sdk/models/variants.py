"""Make precision variants of an fp32 ONNX model: fp16 (onnxconverter-common, fp32 I/O kept) and
int8 QDQ (ONNX Runtime ``quantize_static`` with a calibration reader), plus a helper that writes a
whole model folder with its manifest.

    make_fp16("m.fp32.onnx", "m.fp16.onnx")
    make_int8("m.fp32.onnx", "m.int8.onnx", calibration=[x0, x1, ...])   # float arrays, model input shape
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ModelError
from sdk.models.manifest import Manifest

log = logging.getLogger(__name__)


def _load(path: str | Path) -> Any:
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"{path}: not a readable ONNX model ({e})") from None


def make_fp16(src: str | Path, dst: str | Path, keep_float: Sequence[str] = ()) -> Path:
    """fp16 weights and activations, fp32 inputs/outputs (``keep_io_types``); the nodes named in
    ``keep_float`` stay float32 (casts around them), e.g. those whose values overflow fp16."""
    import onnx
    from onnxconverter_common import float16

    model = _load(src)
    if keep_float:
        _unshare_initializers(model.graph, set(keep_float))
    model = float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=list(keep_float) or None)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return dst


def _unshare_initializers(graph: Any, keep: set[str]) -> None:
    """Give the float32 nodes their own copy of each initializer they share with fp16 nodes (the
    converter would otherwise leave it float32 for both, and the fp16 node's types clash)."""
    import onnx

    inits = {i.name: i for i in graph.initializer}
    users: dict[str, set[bool]] = {}
    for n in graph.node:
        for i in n.input:
            if i in inits:
                users.setdefault(i, set()).add(n.name in keep)
    copies: dict[str, str] = {}
    for n in graph.node:
        for k, i in enumerate(n.input):
            if n.name in keep and users.get(i) == {True, False}:
                if i not in copies:
                    copy = onnx.TensorProto()
                    copy.CopyFrom(inits[i])
                    copy.name = copies[i] = f"{i}_fp32"
                    graph.initializer.append(copy)
                n.input[k] = copies[i]


def make_int8(src: str | Path, dst: str | Path, calibration: Iterable[np.ndarray] | None = None, *,
              per_channel: bool = True, samples: int = 16, seed: int = 0) -> Path:
    """int8 QDQ (int8 weights, per channel; uint8 activations, MinMax calibration) via
    ``sdk.optimize.quantize.quantize_static_int8``.

    ``calibration``: float arrays of the model input's shape; default ``samples`` uniform 0..1
    arrays (fine for tests; calibrate real models on real data)."""
    from sdk.optimize.quantize import quantize_static_int8

    if calibration is None:
        inp = _load(src).graph.input[0]
        shape = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]
        rng = np.random.default_rng(seed)
        calibration = [rng.random(shape, dtype=np.float32) for _ in range(samples)]
    return quantize_static_int8(src, dst, calibration, per_channel=per_channel)


def make_model_folder(folder: str | Path, fp32: str | Path, name: str, *, tiers: Sequence[str] = ("fp32", "int8"),
                      calibration: Iterable[np.ndarray] | None = None, labels: Sequence[str] = (),
                      layout: str = "NCHW") -> Manifest:
    """Write ``folder`` with ``model.<tier>.onnx`` for each tier (``fp32``, ``fp16``, ``int8``) and a
    ``manifest.json`` for the onnxruntime backend (add other backends' variants with ``add_variant``)."""
    import shutil

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = _load(fp32)
    inp, out = model.graph.input[0], model.graph.output
    shape = [d.dim_value or 1 for d in inp.type.tensor_type.shape.dim]
    m = Manifest(name=name, labels=list(labels),
                 input={"name": inp.name, "shape": shape, "layout": layout, "dtype": "float32"},
                 output={"decoder": "softmax", "names": [o.name for o in out]})
    calib = list(calibration) if calibration is not None else None
    for tier in tiers:
        file = folder / f"model.{tier}.onnx"
        if tier == "fp32":
            if Path(fp32).resolve() != file.resolve():
                shutil.copyfile(fp32, file)
        elif tier == "fp16":
            make_fp16(fp32, file)
        elif tier == "int8":
            make_int8(fp32, file, calib)
        else:
            raise ModelError(f"make_model_folder: cannot make tier {tier!r} (fp32, fp16, int8)")
        m.add_variant(tier, file.name, "onnxruntime", folder=folder)
    m.save(folder)
    return m
