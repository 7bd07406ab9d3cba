"""The two network families of the keyword spotter (``--arch``): DS-CNN and BC-ResNet.

Both take ``[n, 1, 49 frames, 40 mel]`` log2 energies, start with a ``Normalize`` layer that
``deployable`` folds into the first convolution (which has no padding, so the fold is exact), and end
with pooling -> linear (12), so the network without its last layer is the enrolment embedding.
Every op exports to ONNX (``export_onnx``), the SDK's TFLite converter and Ember's C kernels (conv,
depthwise conv, ReLU, add, mean, nearest-neighbour resize, linear).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn

from apps.speech.batches import CHANNELS, FRAMES
from apps.speech.train import ARCHS, IN_MEAN, IN_STD

N_CLASSES = 12


class Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - IN_MEAN) / IN_STD


def _cbr(cin: int, cout: int, k: tuple[int, int], stride: tuple[int, int] = (1, 1), groups: int = 1,
         pad: tuple[int, int] = (0, 0), dil: tuple[int, int] = (1, 1), relu: bool = True) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, pad, dilation=dil, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    return layers + [nn.ReLU()] if relu else layers


def dscnn(width: int = 64, depth: int = 4, dropout: float = 0.2) -> nn.Sequential:
    """DS-CNN: normalise -> conv 10x4 /2 (no padding) -> ``depth`` x (depthwise 3x3 + pointwise) -> average
    pool -> linear (12)."""
    layers = [Normalize(), *_cbr(1, width, (10, 4), (2, 2))]
    for _ in range(depth):
        layers += _cbr(width, width, (3, 3), groups=width, pad=(1, 1)) + _cbr(width, width, (1, 1))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(width, N_CLASSES)]
    return nn.Sequential(*layers)


class BCBlock(nn.Module):
    """Broadcasted residual block (Kim et al. 2021) on [n, c, time, freq], with plain BatchNorm (folded into
    the convolutions) and ReLU instead of SubSpectralNorm and swish:
    f2 = depthwise conv over frequency; f1 = mean over frequency -> dilated depthwise conv over time ->
    pointwise; out = relu(x + f2 + f1 broadcast over frequency). A transition block (channels change or
    frequency stride) has a pointwise conv first and no identity path. The broadcast is a nearest-neighbour
    resize (an integer upscale), which every Ember backend and the C exporter support."""

    def __init__(self, cin: int, cout: int, freq: int, fstride: int, dil: int, fpad: int = 1, dropout: float = 0.1):
        super().__init__()
        self.freq = (freq + 2 * fpad - 3) // fstride + 1  # output frequency bins (a constant in the graph)
        self.transition = cin != cout or fstride != 1
        self.pre = nn.Sequential(*_cbr(cin, cout, (1, 1))) if self.transition else nn.Identity()
        self.f2 = nn.Sequential(*_cbr(cout, cout, (1, 3), (1, fstride), cout, (0, fpad), relu=False))
        self.f1 = nn.Sequential(*_cbr(cout, cout, (3, 1), groups=cout, pad=(dil, 0), dil=(dil, 1)),
                                nn.Conv2d(cout, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.Dropout2d(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        x2 = self.f2(x)
        f1 = self.f1(x2.mean(dim=3, keepdim=True))
        f1 = nn.functional.interpolate(f1, scale_factor=(1.0, float(self.freq)), mode="nearest")
        out = x2 + f1 if self.transition else x + x2 + f1
        return torch.relu(out)


def bcresnet(width: int = 8, depth: int = 1, dropout: float = 0.2) -> nn.Sequential:
    """BC-ResNet-(width / 8): normalise -> conv 5x4, frequency stride 2 (no padding) -> 4 stages of
    broadcasted residual blocks (depth x 1, 1, 2, 2 blocks: the paper's network has depth 2; each block
    costs ~2 KB of .tflite structure and quantization parameters; width x 1, 1.5, 2, 2.5 channels; frequency stride 2 in
    stages 2 and 3; time dilation 1, 1, 2, 4: the frames are 20 ms, twice the paper's 10 ms) -> depthwise
    conv 5x4 (no padding) over the remaining 4 frequency bins -> pointwise (width x 4) -> mean -> linear (12).
    Frequency bins 40 -> 19 -> 10 -> 4: every padding is TFLite's SAME or VALID (no PAD ops)."""
    stages = [(width, depth, 1, 1, 1), (width * 3 // 2, depth, 2, 1, 1), (width * 2, 2 * depth, 2, 2, 0),
              (width * 5 // 2, 2 * depth, 1, 4, 1)]
    layers: list[nn.Module] = [Normalize(), *_cbr(1, 2 * width, (5, 4), (1, 2))]  # 49x40 -> 45x19
    cin, freq = 2 * width, 19
    for cout, blocks, fstride, dil, fpad in stages:
        for b in range(blocks):
            layers.append(BCBlock(cin, cout, freq, fstride if b == 0 else 1, dil, fpad if b == 0 else 1))
            cin, freq = cout, layers[-1].freq
    head = 4 * width
    layers += [*_cbr(cin, cin, (5, 4), groups=cin), *_cbr(cin, head, (1, 1)),
               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(head, N_CLASSES)]
    return nn.Sequential(*layers)


def make_net(arch: str = "dscnn", width: int | None = None, depth: int | None = None) -> nn.Sequential:
    w, d = ARCHS[arch]
    return (bcresnet if arch == "bcresnet" else dscnn)(width or w, depth or d)


def deployable(net: nn.Sequential) -> nn.Sequential:
    """The same function without the Normalize layer: conv1(W, (x - m) / s) = conv1(W / s, x) - m / s * sum(W)
    (exact because conv 1 has no padding)."""
    out = copy.deepcopy(net).eval()
    conv = out[1]
    folded = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=True)
    with torch.no_grad():
        folded.weight.copy_(conv.weight / IN_STD)
        folded.bias.copy_(-IN_MEAN / IN_STD * conv.weight.sum(dim=(1, 2, 3)))
    return nn.Sequential(folded, *list(out)[2:]).eval()


def count_params(net: Any) -> int:
    return sum(p.numel() for p in net.parameters())


def export_onnx(net: Any, path: Path) -> Path:
    net = deployable(net)
    dummy = torch.zeros(1, 1, FRAMES, CHANNELS)
    torch.onnx.export(net, (dummy,), str(path), input_names=["features"], output_names=["logits"],
                      opset_version=13, dynamo=False)
    return short_names(path)


def short_names(path: Path) -> Path:
    """Rename the ONNX graph's nodes and inner tensors n0.., t0.., w0..: the names are copied into every
    tier file (~30 bytes per tensor in the .tflite, where the size target is 30 KB)."""
    import onnx

    m = onnx.load(str(path))
    g = m.graph
    keep = {v.name for v in (*g.input, *g.output)}
    new = {t.name: f"w{i}" for i, t in enumerate(g.initializer) if t.name not in keep}
    for n in g.node:
        new |= {o: f"t{len(new)}" for o in n.output if o not in keep and o not in new}
    for t in g.initializer:
        t.name = new.get(t.name, t.name)
    for i, n in enumerate(g.node):
        n.name = f"n{i}"
        n.input[:] = [new.get(x, x) for x in n.input]
        n.output[:] = [new.get(x, x) for x in n.output]
    for v in g.value_info:
        v.name = new.get(v.name, v.name)
    onnx.save(m, str(path))
    return path
