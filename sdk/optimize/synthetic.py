"""A learnable synthetic image task (oriented bars) and a small torch trainer.

Used by the optimizer's tests and benchmark so that accuracy figures mean something without any
download: each image holds one noisy bar at one of ``classes`` orientations; the label is the
orientation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def oriented_bars(n: int, size: int = 32, classes: int = 8, channels: int = 1, noise: float = 0.25,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images float32 [n, channels, size, size] in about 0..1 and int64 labels [n]."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = y * np.pi / classes + rng.normal(0, np.pi / classes / 6, n)
    cx, cy = (rng.uniform(0.3, 0.7, (2, n)) * size).astype(np.float32)
    length = rng.uniform(0.25, 0.45, n) * size
    width = rng.uniform(0.6, 1.6, n)
    dx, dy = np.cos(angle), np.sin(angle)
    px = xx[None] - cx[:, None, None]
    py = yy[None] - cy[:, None, None]
    along = px * dx[:, None, None] + py * dy[:, None, None]
    across = -px * dy[:, None, None] + py * dx[:, None, None]
    bar = np.exp(-(across / width[:, None, None]) ** 2) * (np.abs(along) < length[:, None, None])
    img = bar[:, None] * rng.uniform(0.6, 1.0, (n, channels, 1, 1))
    img = img + rng.normal(0, noise, img.shape)
    return img.astype(np.float32), y.astype(np.int64)


def train_classifier(model: Any, x: np.ndarray, y: np.ndarray, epochs: int = 3, batch: int = 64,
                     lr: float = 3e-3, seed: int = 0) -> Any:
    """Train a torch ``model`` on (x, y) with Adam and cross-entropy; return it in eval mode."""
    import torch

    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    return model.eval()


def export_onnx(model: Any, input_shape: tuple[int, ...], path: str | Path, opset: int = 17) -> Path:
    """Export a torch model (logits output) to ONNX with input ``input`` and output ``logits``."""
    import warnings

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), torch.zeros(input_shape), str(path), input_names=["input"],
                          output_names=["logits"], opset_version=opset, dynamo=False)
    return path
