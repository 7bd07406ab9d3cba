"""A tiny built-in model and data set to try ``ember compress`` in seconds (and for its tests):

    ember compress prune --model sdk.compress.toy:tiny_cnn --data sdk.compress.toy:tiny_data \\
        --out /tmp/tiny --ratio 0.5 --epochs 1

``tiny_data``: 8x8 single-channel images of 4 classes (a bright bar in one of four places, plus noise);
``tiny_cnn``: conv -> 2 depthwise-separable blocks (one residual) -> pool -> linear.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def tiny_cnn(width: int = 8) -> Any:
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
            self.dw = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False),
                                    nn.BatchNorm2d(width), nn.ReLU())
            self.pw = nn.Sequential(nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(width, 4))

        def forward(self, x: Any) -> Any:
            x = self.stem(x)
            return self.head(self.pool(self.pw(self.dw(x))))

    return Net()


def tiny_data(n: int = 192, seed: int = 0) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n)
    x = rng.normal(0, 0.3, (n, 1, 8, 8)).astype(np.float32)
    for i, c in enumerate(y):
        x[i, 0, 2 * c:2 * c + 2, :] += 1.5
    cut = n * 2 // 3
    return (x[:cut], y[:cut].astype(np.int64)), (x[cut:], y[cut:].astype(np.int64))
