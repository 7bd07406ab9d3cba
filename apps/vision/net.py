"""Ember's tiny detector (torch; needs the ``train`` extra): a depthwise-separable backbone, a small
top-down neck to stride 8 (or 16) and a CenterNet/TTFNet-style anchor-free head.

Outputs ``heatmap`` ``[1, C, H/8, W/8]`` (per-class centre heat maps, sigmoid applied) and ``ltrb``
``[1, 4, H/8, W/8]`` (H/16 with ``stride=16``) (distances from each cell centre to the box edges in input pixels), decoder
``centernet``. Two outputs, not one, so that int8 gives each its own scale.
Knobs: ``width`` (channel multiplier), ``depth`` (extra blocks per stage) and the input size.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def conv_bn(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def dw_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(conv_bn(cin, cin, 3, stride, groups=cin), conv_bn(cin, cout))


def _ch(c: int, width: float) -> int:
    return max(8, round(c * width / 8) * 8)


class TinyDet(nn.Module):
    def __init__(self, num_classes: int = 6, width: float = 1.0, depth: int = 1, neck: int = 64,
                 reg_scale: float = 16.0, stride: int = 8) -> None:
        super().__init__()
        if stride not in (8, 16):
            raise ValueError(f"stride {stride}: use 8 or 16")
        self.stride = stride
        c = [_ch(x, width) for x in (16, 32, 48, 96, 160)]
        self.stem = conv_bn(3, c[0], 3, 2)
        stages = []
        for i in range(1, 5):
            blocks = [dw_block(c[i - 1], c[i], 2)] + [dw_block(c[i], c[i]) for _ in range(depth if i > 1 else 0)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        n = _ch(neck, width)
        self.lat = nn.ModuleList([conv_bn(c[i], n) for i in (2, 3, 4)])
        self.smooth = nn.ModuleList([dw_block(n, n), dw_block(n, n)])
        self.head = dw_block(n, n)
        self.cls = nn.Conv2d(n, num_classes, 1)
        self.reg = nn.Conv2d(n, 4, 1)
        nn.init.constant_(self.cls.bias, -4.6)
        nn.init.constant_(self.reg.bias, 1.0)
        self.reg_scale = reg_scale

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x * (1 / 64.0) - 2.0)  # RGB 0-255 in
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        p5 = self.lat[2](feats[3])
        p4 = self.smooth[0](self.lat[1](feats[2]) + F.interpolate(p5, scale_factor=2.0, mode="nearest"))
        if self.stride == 16:  # coarser head: larger receptive field per cell, for large objects
            return self.head(p4)
        p3 = self.smooth[1](self.lat[0](feats[1]) + F.interpolate(p4, scale_factor=2.0, mode="nearest"))
        return self.head(p3)

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of the heat maps and the (positive) box distances in pixels."""
        f = self.features(x)
        return self.cls(f), F.relu(self.reg(f)) * self.reg_scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, ltrb = self.raw(x)
        return torch.sigmoid(logits), ltrb
