"""Stages for a generic classification pipeline: frame/signal → model input → runtime backend → top-k.

Used by ``ember pipeline run`` and ``bench/pipeline_overhead.py``; usable from Python:
``Pipeline(src, stages=classification_stages("m.onnx", labels=["cat", "dog"]), sinks=[...])``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import PipelineError
from sdk.pipeline.packet import Stage


class ImagePreprocess:
    """BGR uint8 H×W×3 frame → float32 [1, 3, H, W] (or [1, H, W, 3] with ``layout="NHWC"``) RGB in
    0..1 at the model's size, then ``(x - mean) / std`` per channel when given."""

    def __init__(self, input_hw: tuple[int, int], mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None, layout: str = "NCHW") -> None:
        if layout not in ("NCHW", "NHWC"):
            raise ValueError(f"layout must be NCHW or NHWC, got {layout!r}")
        self.size = (int(input_hw[1]), int(input_hw[0]))  # cv2 wants (w, h)
        self.nchw = layout == "NCHW"
        per_channel = (1, -1, 1, 1) if self.nchw else (1, 1, 1, -1)
        self.mean = None if mean is None else np.asarray(mean, np.float32).reshape(per_channel)
        self.std = None if std is None else np.asarray(std, np.float32).reshape(per_channel)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        import cv2

        if frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"expected an H×W×3 BGR frame, got shape {frame.shape}")
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        x = (rgb.transpose(2, 0, 1) if self.nchw else rgb)[None].astype(np.float32)
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


class ModelInfer:
    """A model on an Ember runtime backend (``sdk.runtime.backends``) as a stage function:
    input array → first output. Warmed up when created, so the first item is not slow."""

    def __init__(self, model: str | Path, backend: str = "onnxruntime", threads: int = 1) -> None:
        from sdk.runtime.backends import load_backend

        self.backend = load_backend(model, backend, threads=threads)
        self.input_shape = list(self.backend.inputs[0].concrete_shape())
        self.backend.warmup(1)

    @property
    def layout(self) -> str | None:
        """``NCHW`` or ``NHWC`` for a 4-D input with 3 colour channels; None for anything else."""
        shape = self.input_shape
        if len(shape) == 4 and shape[1] == 3:
            return "NCHW"
        if len(shape) == 4 and shape[3] == 3:
            return "NHWC"
        return None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.backend.run(x)[0]


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
                          top_k: int = 1, backend: str = "onnxruntime") -> list[Stage]:
    """``preprocess`` (image or signal, chosen from the model's input shape), ``infer`` (the model on
    ``backend`` with ``threads`` threads) and ``postprocess`` (top-k labels)."""
    infer = ModelInfer(model, backend, threads)
    layout, shape = infer.layout, infer.input_shape
    if layout is not None:
        hw = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
        pre: Any = ImagePreprocess(hw, layout=layout)
    else:
        pre = FitToShape(shape)
    return [Stage("preprocess", pre), Stage("infer", infer), Stage("postprocess", TopK(labels, top_k))]
