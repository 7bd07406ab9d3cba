"""Stages for a generic classification pipeline: frame/signal → model input → ONNX Runtime → top-k.

Used by ``ember pipeline run`` and ``bench/pipeline_overhead.py``; usable from Python:
``Pipeline(src, stages=classification_stages("m.onnx", labels=["cat", "dog"]), sinks=[...])``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ModelError, PipelineError
from sdk.pipeline.packet import Stage


class ImagePreprocess:
    """BGR uint8 H×W×3 frame → float32 [1, 3, H, W] RGB in 0..1 at the model's size,
    then ``(x - mean) / std`` per channel when given."""

    def __init__(self, input_hw: tuple[int, int], mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:
        self.size = (int(input_hw[1]), int(input_hw[0]))  # cv2 wants (w, h)
        self.mean = None if mean is None else np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
        self.std = None if std is None else np.asarray(std, np.float32).reshape(1, -1, 1, 1)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 BGR frame, got shape {frame.shape}")
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        x = rgb.transpose(2, 0, 1)[None].astype(np.float32)
        x *= np.float32(1.0 / 255.0)
        if self.mean is not None:
            x -= self.mean
        if self.std is not None:
            x /= self.std
        return x


class FitToShape:
    """Audio/sensor block (samples × channels) → float32 of ``shape``: flattened, zero-padded or cut."""

    def __init__(self, shape: Sequence[int]) -> None:
        self.shape = tuple(int(d) for d in shape)
        self.size = int(np.prod(self.shape))

    def __call__(self, data: Any) -> np.ndarray:
        flat = np.asarray(data, dtype=np.float32).ravel()
        if flat.size < self.size:
            flat = np.pad(flat, (0, self.size - flat.size))
        return flat[: self.size].reshape(self.shape)


class OnnxInfer:
    """An ONNX Runtime CPU session as a stage function: input array → first output."""

    def __init__(self, model: str | Path, threads: int = 1) -> None:
        import onnxruntime as ort

        path = Path(model)
        if not path.is_file():
            raise ModelError(f"model file {path} not found (give a .onnx file)")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph types
            raise ModelError(f"{path}: ONNX Runtime cannot load it: {e}") from None
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        self.output_names = [self.session.get_outputs()[0].name]

    @property
    def is_image_model(self) -> bool:
        """A 4-D input with 3 channels first (NCHW), as ``ImagePreprocess`` produces."""
        return len(self.input_shape) == 4 and self.input_shape[1] == 3

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(self.output_names, {self.input_name: x})[0]


class TopK:
    """Scores → ``{"label", "index", "score", "top": [[label, score], ...]}`` (k best)."""

    def __init__(self, labels: Sequence[str] | None = None, k: int = 1) -> None:
        self.labels = list(labels) if labels else None
        self.k = max(1, k)

    def __call__(self, scores: np.ndarray) -> dict[str, Any]:
        flat = np.asarray(scores, dtype=np.float32).ravel()
        order = np.argsort(flat)[::-1][: self.k]
        top = [[self._label(int(i)), float(flat[i])] for i in order]
        return {"label": top[0][0], "index": int(order[0]), "score": top[0][1], "top": top}

    def _label(self, i: int) -> str:
        return self.labels[i] if self.labels and i < len(self.labels) else str(i)


def read_labels(spec: str | Path | None) -> list[str] | None:
    """Labels from a file (one per line) or a comma-separated string; None when not given."""
    if spec is None or spec == "":
        return None
    path = Path(spec)
    if path.is_file():
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if "," in str(spec):
        return [s.strip() for s in str(spec).split(",")]
    raise PipelineError("postprocess", f"labels {spec!r}: no such file (give a file with one label a line, "
                        "or a comma-separated list)")


def classification_stages(model: str | Path, labels: Sequence[str] | None = None, threads: int = 1,
                          top_k: int = 1) -> list[Stage]:
    """``preprocess`` (image or signal, chosen from the model's input shape), ``infer`` (ONNX
    Runtime, ``threads`` intra-op threads) and ``postprocess`` (top-k labels)."""
    infer = OnnxInfer(model, threads)
    if infer.is_image_model:
        pre: Any = ImagePreprocess((infer.input_shape[2], infer.input_shape[3]))
    else:
        pre = FitToShape(infer.input_shape)
    return [Stage("preprocess", pre), Stage("infer", infer), Stage("postprocess", TopK(labels, top_k))]
