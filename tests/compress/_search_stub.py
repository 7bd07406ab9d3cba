"""A tiny model family and data for the search/exit/cascade tests (stand-ins: no training, real ONNX Runtime)."""

from __future__ import annotations

from typing import Any

import numpy as np

INPUT_SHAPE = (1, 1, 16, 16)
N_CLASSES = 4


def tiny_net(width: int = 8, depth: int = 1, kernel: int = 3) -> Any:
    """conv k×k → (depth-1) × (depthwise k×k + pointwise) → average pool → linear."""
    from torch import nn

    layers: list[nn.Module] = [nn.Conv2d(1, width, kernel, padding=kernel // 2), nn.ReLU()]
    for _ in range(depth - 1):
        layers += [nn.Conv2d(width, width, kernel, padding=kernel // 2, groups=width), nn.ReLU(),
                   nn.Conv2d(width, width, 1), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, N_CLASSES)]
    return nn.Sequential(*layers).eval()


def tiny_data(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, *INPUT_SHAPE[1:]), dtype=np.float32), rng.integers(0, N_CLASSES, n)


class ParamsProxy:
    """A stand-in for short training (tests never train): accuracy grows with the parameter count and
    the effort; counts its calls. ``sleep_s`` makes a trial take time like real training would."""

    def __init__(self, sleep_s: float = 0.0) -> None:
        self.calls: list[float] = []
        self.sleep_s = sleep_s

    def __call__(self, model: Any, effort: float) -> dict[str, float]:
        import time

        self.calls.append(effort)
        time.sleep(self.sleep_s)
        params = sum(p.numel() for p in model.parameters())
        return {"accuracy": float(min(99.0, 40 + 8 * np.log2(params) * (0.8 + 0.2 * effort))),
                "test_accuracy": float(30 + 0.01 * params)}


def cascade_data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``--data`` for ``ember compress cascade`` in the tests: validation and test splits."""
    return {"val": tiny_data(30, seed=5), "test": tiny_data(30, seed=6)}
