"""Fixtures for the optimizer tests: a small conv net trained here on oriented bars (~3 s)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sdk.optimize.synthetic import export_onnx, oriented_bars, train_classifier

SIZE = 16


@pytest.fixture(scope="session")
def bars_data() -> dict[str, np.ndarray]:
    x, y = oriented_bars(2000, size=SIZE, seed=0)
    xc, _ = oriented_bars(64, size=SIZE, seed=1)
    xe, ye = oriented_bars(300, size=SIZE, seed=2)
    return {"x": x, "y": y, "calib": xc, "x_eval": xe, "y_eval": ye}


@pytest.fixture(scope="session")
def trained_onnx(tmp_path_factory: pytest.TempPathFactory, bars_data: dict[str, np.ndarray]) -> Path:
    """A trained conv net (conv, maxpool, depthwise, relu6, avg-pool, linear) as ONNX."""
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(0)  # weight init too: the model (and every figure below) is reproducible
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU6(), nn.Conv2d(16, 32, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 8))
    train_classifier(net, bars_data["x"], bars_data["y"], epochs=6)
    return export_onnx(net, (1, 1, SIZE, SIZE), tmp_path_factory.mktemp("bars") / "bars.onnx")
