"""Ember's tiny detector (torch; needs the ``train`` extra): a depthwise-separable backbone, a PAN-lite
neck (top-down to stride 8, bottom-up back to 32) and an anchor-free head on each of strides 8, 16 and 32.

Each cell predicts per-class scores (sigmoid; the quality of a box, objectness folded in) and the
distances l, t, r, b from the cell centre to the box edges (``relu(x) * stride``). The exported graph
decodes the boxes itself and has two outputs, ``boxes`` ``[1, N, 4]`` (cx, cy, w, h in input pixels)
and ``scores`` ``[1, N, C]``, cells level by level (stride 8 first), row-major: decoder ``yolov8``.
Two outputs, not one, so that int8 gives the pixels and the scores their own scales.
Knobs: ``width`` (channel multiplier), ``depth`` (extra blocks per stage) and the input size.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

STRIDES = (8, 16, 32)


def conv_bn(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def dw_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(conv_bn(cin, cin, 3, stride, groups=cin), conv_bn(cin, cout))


def _ch(c: int, width: float) -> int:
    return max(8, round(c * width / 8) * 8)


class TinyDet(nn.Module):
    def __init__(self, num_classes: int = 6, width: float = 1.0, depth: int = 1, neck: int = 64) -> None:
        super().__init__()
        c = [_ch(x, width) for x in (16, 32, 48, 96, 160)]
        self.stem = conv_bn(3, c[0], 3, 2)
        stages = []
        for i in range(1, 5):
            blocks = [dw_block(c[i - 1], c[i], 2)] + [dw_block(c[i], c[i]) for _ in range(depth if i > 1 else 0)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        n = _ch(neck, width)
        self.lat = nn.ModuleList([conv_bn(c[i], n) for i in (2, 3, 4)])
        self.smooth = nn.ModuleList([dw_block(n, n), dw_block(n, n)])  # top-down: P4, P3
        self.down = nn.ModuleList([dw_block(n, n, 2), dw_block(n, n, 2)])  # bottom-up: P3 -> 4, 4 -> 5
        self.fuse = nn.ModuleList([dw_block(n, n), dw_block(n, n)])  # N4, N5
        self.heads = nn.ModuleList([dw_block(n, n) for _ in STRIDES])  # one per level (BN statistics differ)
        self.cls = nn.ModuleList([nn.Conv2d(n, num_classes, 1) for _ in STRIDES])
        self.reg = nn.ModuleList([nn.Conv2d(n, 4, 1) for _ in STRIDES])
        for cls, reg in zip(self.cls, self.reg):
            nn.init.constant_(cls.bias, -4.6)
            nn.init.constant_(reg.bias, 2.0)

    def levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x * (1 / 64.0) - 2.0)  # RGB 0-255 in
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        p5 = self.lat[2](feats[3])
        p4 = self.smooth[0](self.lat[1](feats[2]) + F.interpolate(p5, scale_factor=2.0, mode="nearest"))
        p3 = self.smooth[1](self.lat[0](feats[1]) + F.interpolate(p4, scale_factor=2.0, mode="nearest"))
        n4 = self.fuse[0](p4 + self.down[0](p3))
        n5 = self.fuse[1](p5 + self.down[1](n4))
        return [p3, n4, n5]

    def _heads(self, x: torch.Tensor, centre_size: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits ``[B, N, C]`` and boxes ``[B, N, 4]``: x1 y1 x2 y2, or cx cy w h with ``centre_size``
        (4-D ops and splits only until the last reshape, so every converter keeps the layout)."""
        logits, boxes = [], []
        for f, s, head, cls, reg in zip(self.levels(x), STRIDES, self.heads, self.cls, self.reg):
            h = head(f)
            logits.append(cls(h).flatten(2))
            g = h.shape[-1]
            c = (torch.arange(g, dtype=torch.float32) + 0.5) * s
            cx, cy = c.reshape(1, 1, 1, g), c.reshape(1, 1, g, 1)
            left, top, right, bottom = (F.relu(reg(h)) * s).split(1, dim=1)
            if centre_size:
                parts = [cx + (right - left) * 0.5, cy + (bottom - top) * 0.5, left + right, top + bottom]
            else:
                parts = [cx - left, cy - top, cx + right, cy + bottom]
            boxes.append(torch.cat(parts, 1).flatten(2))
        return torch.cat(logits, 2).transpose(1, 2), torch.cat(boxes, 2).transpose(1, 2)

    def raw(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits ``[B, N, C]`` and boxes ``[B, N, 4]`` (x1, y1, x2, y2 input pixels), for training."""
        return self._heads(x, centre_size=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``boxes`` ``[B, N, 4]`` (cx, cy, w, h input pixels) and ``scores`` ``[B, N, C]`` (sigmoid)."""
        logits, boxes = self._heads(x, centre_size=True)
        return boxes, torch.sigmoid(logits)
