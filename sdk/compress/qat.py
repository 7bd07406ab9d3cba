"""Quantization-aware training with the int8 scheme of ``ember optimize``'s ONNX Runtime tier:
per-channel symmetric int8 weights (range ±127), per-tensor asymmetric int8 activations, int32 biases,
round half to even, and exported as a QDQ model carrying the *learned* scales (no recalibration).

    from sdk.compress.qat import quantize_aware, export_qdq
    q = quantize_aware(model, calib_x)          # BN folded, fake quant inserted, ranges from calib_x
    fit(q, train, epochs=2, lr=1e-4)            # ranges follow an EMA while training
    acc = evaluate(q, val)                      # eval mode = ONNX Runtime's int8 arithmetic, exactly
    export_qdq(q, "model.int8.onnx", calib_x)   # ORT fuses it to QLinearConv / QGemm / QLinearGlobalAveragePool

In eval mode the model computes what ONNX Runtime's fused int8 kernels compute: convolutions and
linear layers accumulate exactly in integers and requantize in float32 (``x_scale * w_scale / y_scale``,
round half to even); global average pooling uses the fixed-point rescale of ``QLinearGlobalAveragePool``.
A ReLU after a layer is folded into its output quantizer (zero point -128), as ONNX Runtime does.
Supported graphs: Conv2d (any groups) / Linear / BatchNorm (folded) / ReLU / global average pooling /
flatten / dropout. The input normalisation must be folded into the first layer beforehand.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from sdk.errors import ConfigError

EMA = 0.99
QMIN, QMAX, WMAX = -128, 127, 127


def _torch() -> Any:
    import torch

    return torch


class ActQuant(_torch().nn.Module):
    """Per-tensor asymmetric int8 fake quantizer; the range follows an EMA of the batch min/max while training."""

    def __init__(self, relu: bool = False) -> None:
        super().__init__()
        torch = _torch()
        self.relu = relu  # range starts at 0 (zero point -128): a ReLU before it is folded in
        self.register_buffer("lo", torch.tensor(0.0))
        self.register_buffer("hi", torch.tensor(0.0))
        self.register_buffer("ready", torch.tensor(False))
        self.export = False

    def observe(self, x: Any) -> None:
        lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
        if self.relu:
            lo = 0.0
        if not bool(self.ready):
            self.lo.fill_(lo)
            self.hi.fill_(hi)
            self.ready.fill_(True)
        else:
            self.lo.mul_(EMA).add_((1 - EMA) * lo)
            self.hi.mul_(EMA).add_((1 - EMA) * hi)

    def qparams(self) -> tuple[float, int]:
        """(scale, zero point) the way ONNX Runtime's quantizer derives them from a range (float32)."""
        lo, hi = np.float32(min(float(self.lo), 0.0)), np.float32(max(float(self.hi), 0.0))
        scale = np.float32((hi - lo) / np.float32(QMAX - QMIN)) if hi > lo else np.float32(1.0)
        zp = QMIN if self.relu else int(np.clip(np.round(QMIN - lo / scale), QMIN, QMAX))
        return float(scale), zp

    def forward(self, x: Any) -> Any:
        torch = _torch()
        if self.training:
            with torch.no_grad():
                self.observe(x)
        s, zp = self.qparams()
        if self.export:
            return torch.fake_quantize_per_tensor_affine(x, s, zp, QMIN, QMAX)
        q = torch.clamp(torch.round(x / s) + zp, QMIN, QMAX)
        return x + ((q - zp) * s - x).detach() if self.training else (q - zp) * s


def _weight_scales(w: Any) -> Any:
    torch = _torch()
    amax = w.detach().abs().reshape(w.shape[0], -1).amax(1)
    return torch.where(amax > 0, amax / WMAX, torch.ones_like(amax)).float()


def _fq_weight(w: Any) -> Any:
    s = _weight_scales(w).reshape(-1, *([1] * (w.dim() - 1)))
    q = _torch().clamp(_torch().round(w / s), -WMAX, WMAX)
    return w + (q * s - w).detach()


class QLayer(_torch().nn.Module):
    """A conv or linear layer with fake-quantized weights; in eval mode ONNX Runtime's int8 arithmetic."""

    def __init__(self, layer: Any, in_q: ActQuant, out_q: ActQuant) -> None:
        super().__init__()
        self.layer = layer
        self._q = [in_q, out_q]  # not submodules: they live in the graph
        self.export = False

    def forward(self, x: Any) -> Any:
        torch = _torch()
        F = torch.nn.functional
        m = self.layer
        conv = isinstance(m, torch.nn.Conv2d)
        if self.export:  # float weights: sdk.compress.qdq quantizes them with the same formula
            return m(x)
        if self.training:
            w = _fq_weight(m.weight)
            return m._conv_forward(x, w, m.bias) if conv else F.linear(x, w, m.bias)
        return self._int8(x, conv)

    def _int8(self, x: Any, conv: bool) -> Any:
        torch = _torch()
        m = self.layer
        (sx, _), (sy, zy) = self._q[0].qparams(), self._q[1].qparams()
        sw = _weight_scales(m.weight).numpy().astype(np.float32)
        wq = torch.clamp(torch.round(m.weight.detach() / torch.from_numpy(sw).reshape(-1, *([1] * (m.weight.dim() - 1)))),
                         -WMAX, WMAX).double()
        xq = torch.round(x.double() / sx)  # x is on the input grid: (q - zx) * sx
        bias_scale = np.float32(sx) * sw
        acc = m._conv_forward(xq, wq, None) if conv else torch.nn.functional.linear(xq, wq)
        if m.bias is not None:
            bq = np.round(m.bias.detach().numpy().astype(np.float32) / bias_scale).astype(np.float64)
            acc = acc + torch.from_numpy(bq).reshape(1, -1, *([1] * (acc.dim() - 2)))
        mult = torch.from_numpy(bias_scale / np.float32(sy)).reshape(1, -1, *([1] * (acc.dim() - 2)))
        y = torch.clamp(torch.round(acc.float() * mult) + zy, QMIN, QMAX)
        return ((y - zy) * sy).float()


class QPool(_torch().nn.Module):
    """Global average pooling; in eval mode QLinearGlobalAveragePool's fixed-point rescale."""

    def __init__(self, pool: Any, in_q: ActQuant, out_q: ActQuant) -> None:
        super().__init__()
        self.pool = pool
        self._q = [in_q, out_q]

    def forward(self, x: Any) -> Any:
        torch = _torch()
        if self.training or getattr(self._q[0], "export", False):
            return self.pool(x)
        (sx, _), (sy, zy) = self._q[0].qparams(), self._q[1].qparams()
        n = x.shape[2] * x.shape[3]
        acc = torch.round(x.double() / sx).sum(dim=(2, 3), keepdim=True)  # sum of (q - zx)
        scale = float(np.float32(sx) / (np.float32(sy) * np.float32(n)))
        y = torch.clamp(torch.floor(acc * scale + 0.5) + zy, QMIN, QMAX)
        return ((y - zy) * sy).float()


def fold_batchnorm(model: Any) -> Any:
    """A copy of ``model`` (eval) with every BatchNorm folded into the convolution before it."""
    from torch.fx.experimental.optimization import fuse

    from sdk.compress.graph import trace

    return fuse(trace(copy.deepcopy(model).eval()), inplace=True)


def quantize_aware(model: Any, calib_x: np.ndarray) -> Any:
    """The fake-quant model (an fx GraphModule): BN folded, a quantizer at the input and after every
    conv/linear (+ReLU) and pooling, ranges initialised on ``calib_x``."""
    torch = _torch()
    nn = torch.nn
    gm = fold_batchnorm(model)
    mods = dict(gm.named_modules())
    graph = gm.graph
    quant_of: dict[str, ActQuant] = {}
    k = 0

    def add_quant(node: Any, relu: bool) -> ActQuant:
        nonlocal k
        q = ActQuant(relu)
        name = f"act_quant{k}"
        k += 1
        gm.add_submodule(name, q)
        with graph.inserting_after(node):
            new = graph.call_module(name, (node,))
        node.replace_all_uses_with(new, delete_user_cb=lambda u: u is not new)
        quant_of[node.name] = q
        quant_of[new.name] = q
        return q

    def is_relu(n: Any) -> bool:
        return (n.op == "call_module" and isinstance(mods.get(n.target), nn.ReLU)) or \
            getattr(n.target, "__name__", "") == "relu"

    for node in list(graph.nodes):
        m = mods.get(node.target) if node.op == "call_module" else None
        src = node.args[0] if node.args else None
        if node.op == "placeholder":
            add_quant(node, relu=False)
        elif isinstance(m, (nn.Conv2d, nn.Linear, nn.AdaptiveAvgPool2d)):
            if getattr(src, "name", None) not in quant_of:
                raise ConfigError(f"QAT: {node.target} does not read a quantized tensor (its input comes "
                                  f"from {getattr(src, 'target', src)}); fold input normalisation into the first layer")
            users = list(node.users)
            relu = len(users) == 1 and is_relu(users[0])
            out_q = add_quant(users[0] if relu else node, relu=relu)
            wrapper = (QPool if isinstance(m, nn.AdaptiveAvgPool2d) else QLayer)(m, quant_of[src.name], out_q)
            gm.add_submodule(node.target, wrapper)
        elif isinstance(m, (nn.Flatten, nn.Dropout, nn.ReLU)) or getattr(node.target, "__name__", "") in (
                "flatten", "relu"):
            if getattr(src, "name", None) in quant_of:
                quant_of[node.name] = quant_of[src.name]
        elif node.op != "output" and not (node.op == "call_module" and isinstance(m, ActQuant)):
            raise ConfigError(f"QAT: unsupported operation {node.op} {getattr(node.target, '__name__', node.target)}; "
                              "supported: Conv2d, Linear, BatchNorm, ReLU, global average pooling, flatten, dropout")
    gm.recompile()
    gm.train()
    with torch.no_grad():
        for i in range(0, len(calib_x), 64):
            gm(torch.from_numpy(np.ascontiguousarray(calib_x[i:i + 64], np.float32)))
    return gm.eval()


def _set_export(model: Any, on: bool) -> None:
    for m in model.modules():
        if isinstance(m, (ActQuant, QLayer)):
            m.export = on


def export_qdq(model: Any, path: Any, sample: np.ndarray) -> Any:
    """The QAT model as an int8 QDQ ONNX file with its own scales (int8 weights, int32 biases)."""
    import warnings
    from pathlib import Path

    from sdk.compress.folder import export_onnx
    from sdk.compress.qdq import finalize_qdq

    _set_export(model, True)
    try:
        with warnings.catch_warnings():  # the quantizers' scales are constants of the exported graph, as meant
            warnings.filterwarnings("ignore", message="Converting a tensor to a Python")
            export_onnx(model, path, sample)
    finally:
        _set_export(model, False)
    finalize_qdq(Path(path))
    return Path(path)


def float_model(model: Any) -> Any:
    """The QAT model's float twin (BN folded, the trained weights, no quantizers): the fp32 tier."""
    from torch import nn

    out = copy.deepcopy(model)
    for name, m in list(out.named_modules()):
        if isinstance(m, ActQuant):
            out.add_submodule(name, nn.Identity())
        elif isinstance(m, QLayer):
            out.add_submodule(name, m.layer)
        elif isinstance(m, QPool):
            out.add_submodule(name, m.pool)
    return out.eval()
