"""Bring your own detector: make an Ember model folder (``manifest.json`` + ``model.fp32.*``) from an
ONNX or TFLite detection model and a label file; tiers then come from ``ember optimize``.

    ember models import yolox_nano.onnx --decoder yolox --labels coco.txt --out models/yolox
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdk.detect.decoders import DECODERS, get_decoder, yolox_grid
from sdk.errors import ModelError

# How each family's reference exporter expects its input (0-255 pixels before normalisation).
INPUT_DEFAULTS: dict[str, dict[str, Any]] = {
    "yolox": {"color": "BGR", "letterbox": {"pad": 114, "center": False}},
    "yolov5": {"color": "RGB", "letterbox": {"pad": 114, "center": True},
               "normalization": {"mean": [0.0, 0.0, 0.0], "std": [255.0, 255.0, 255.0]}},
    "yolov8": {"color": "RGB", "letterbox": {"pad": 114, "center": True},
               "normalization": {"mean": [0.0, 0.0, 0.0], "std": [255.0, 255.0, 255.0]}},
    "ssd": {"color": "RGB", "letterbox": {"pad": 0, "center": True},
            "normalization": {"mean": [127.5, 127.5, 127.5], "std": [127.5, 127.5, 127.5]}},
    "centernet": {"color": "RGB", "letterbox": {"pad": 114, "center": True}},
}


def read_labels(path: str | Path) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"{p}: label file not found (one class name per line)")
    labels = [line.strip() for line in p.read_text(encoding="utf-8", errors="replace").splitlines()]
    labels = [x for x in labels if x]
    if not labels:
        raise ModelError(f"{p}: the label file is empty (one class name per line)")
    return labels


def guess_decoder(output_shapes: Sequence[Sequence[int]], input_hw: tuple[int, int]) -> str:
    """The decoder whose output layout matches ``output_shapes``; a ``ModelError`` when none does."""
    shapes = [list(s) for s in output_shapes]
    if len(shapes) >= 3 and any(len(s) == 3 and s[-1] == 4 for s in shapes):
        return "ssd"
    if len(shapes) in (1, 2) and all(len(s) == 4 for s in shapes):
        return "centernet"
    if len(shapes) == 2 and all(len(s) == 3 for s in shapes) and shapes[0][1] == shapes[1][1] and 4 in (
            shapes[0][2], shapes[1][2]):
        return "yolov8"  # boxes [1, N, 4] + scores [1, N, C]
    if len(shapes) == 1 and len(shapes[0]) == 3:
        _, a, b = shapes[0]
        if a < b and a >= 5:
            return "yolov8"
        if b >= 6:
            return "yolox" if a == len(yolox_grid(input_hw)[0]) else "yolov5"
    raise ModelError(f"model outputs {shapes} match no decoder ({', '.join(DECODERS)}): Ember reads YOLOX "
                     "[1, N, 5+C], YOLOv5 [1, N, 5+C], YOLOv8 [1, 4+C, N] (or boxes [1, N, 4] + scores [1, N, C]), SSD TFLite_Detection_PostProcess "
                     "(4 outputs) or CenterNet [1, C+4, H, W]")


def _probe(model: Path, backend: str, input_size: int | None) -> tuple[list[Any], list[list[int]]]:
    """The model's input shape (NCHW or NHWC, dynamic dims resolved) and its output shapes on zeros."""
    from sdk.runtime.backends import load_backend

    try:
        with load_backend(model, backend, threads=1) as b:
            shape = list(b.inputs[0].shape)
            fixed = [d if isinstance(d, int) and d > 0 else None for d in shape]
            if None in fixed[1:]:
                if not input_size:
                    raise ModelError(f"{model}: input shape {shape} has dynamic sizes: give --input-size N")
                nhwc = fixed[-1] == 3
                fixed = [1, input_size, input_size, 3] if nhwc else [1, 3, input_size, input_size]
            fixed[0] = 1
            x = np.zeros(fixed, np.float32 if b.inputs[0].dtype in (None, "float32") else b.inputs[0].dtype)
            outs = b.run([x])
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001 - a runtime's own error on a file that is not a model
        raise ModelError(f"{model}: cannot load or run it with {backend}: {str(e).splitlines()[0][:200]}") from None
    return fixed, [list(np.shape(o)) for o in outs]


def import_model(model: str | Path, out: str | Path, decoder: str = "auto", labels: Sequence[str] | str | Path = (),
                 classes: Sequence[int] = (), input_size: int | None = None, score_threshold: float = 0.3,
                 iou_threshold: float = 0.5, name: str | None = None) -> Path:
    """Write ``out/manifest.json`` and ``out/model.fp32.<onnx|tflite>``; returns the folder.

    ``classes`` keeps only these output class ids (their labels, in this order, become the model's).
    """
    from sdk.models.manifest import Manifest

    src = Path(model)
    if not src.is_file():
        raise ModelError(f"{src}: model file not found")
    backend = "litert" if src.suffix.lower() == ".tflite" else "onnxruntime"
    shape, out_shapes = _probe(src, backend, input_size)
    nhwc = shape[-1] in (1, 3) and shape[1] not in (1, 3)
    hw = (shape[1], shape[2]) if nhwc else (shape[2], shape[3])
    decoder = guess_decoder(out_shapes, hw) if decoder == "auto" else decoder
    get_decoder(decoder)
    try:
        get_decoder(decoder)([np.zeros(s, np.float32) for s in out_shapes], hw, 1.0)
    except ModelError as e:
        raise ModelError(f"{src}: outputs {out_shapes} do not fit the {decoder} decoder ({e})") from None
    names = read_labels(labels) if isinstance(labels, (str, Path)) else list(labels)
    if classes:
        names = [names[c] if c < len(names) else str(c) for c in classes]
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / f"model.fp32{src.suffix.lower()}"
    if src.resolve() != dst.resolve():
        shutil.copyfile(src, dst)
    spec = {"name": _input_name(src, backend), "shape": shape, "layout": "NHWC" if nhwc else "NCHW",
            "dtype": "float32", **INPUT_DEFAULTS[decoder]}
    output = {"decoder": decoder, "score_threshold": score_threshold, "iou_threshold": iou_threshold,
              "max_detections": 100, **({"classes": list(classes)} if classes else {})}
    m = Manifest(name=name or src.stem, task="detection", labels=names, input=spec, output=output)
    m.add_variant("fp32", dst.name, backend, folder=folder)
    m.save(folder)
    return folder


def _input_name(src: Path, backend: str) -> str:
    from sdk.runtime.backends import load_backend

    with load_backend(src, backend, threads=1) as b:
        return str(b.inputs[0].name)
