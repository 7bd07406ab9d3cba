"""Structured pruning: remove whole channels (filters) so the network is really smaller (fewer
channels in the exported ONNX, fewer MACs, lower latency on dense runtimes); and unstructured
magnitude pruning as the comparison (zeros: smaller compressed files, no faster dense runtime).

    from sdk.compress.prune import prune, prune_schedule, magnitude_prune
    small = prune(model, sample, ratio=0.5, method="l1")                       # one shot
    small = prune(model, sample, macs=2_000_000, method="taylor", data=train)  # to a MAC target
    small = prune_schedule(model, train, sample, ratio=0.5, steps=3, epochs=1, lr=1e-3)  # prune -> fine-tune

Coupled layers come from :mod:`sdk.compress.graph` (torch.fx): a residual add's inputs share one
channel set, depthwise convolutions and batch norm follow their input, concatenations map segments.
Scores per channel: ``l1`` (L1 norm of the producers' filters), ``activation`` (mean |activation|
of the group's tensors on ``data``) or ``taylor`` (|activation x gradient| of the loss, summed).
A ratio removes that fraction of the channels of every prunable group (at least one stays).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

from sdk.compress.graph import ChannelGraph, Layout, channel_graph
from sdk.errors import ConfigError

METHODS = ("l1", "activation", "taylor")
SCORE_BATCHES = 8


def torch_macs(model: Any, sample: np.ndarray) -> int:
    """Multiply-accumulates of one inference of a torch model (conv: output elements x in/groups x k x k;
    linear: outputs x in), the count ``sdk.optimize.graph_stats`` gives for the exported ONNX."""
    import torch
    from torch import nn

    total = [0]

    def hook(m: Any, _inp: Any, out: Any) -> None:
        per = m.in_channels // m.groups * int(np.prod(m.kernel_size)) if isinstance(m, nn.Conv2d) else m.in_features
        total[0] += int(out.numel()) * per

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.from_numpy(np.ascontiguousarray(sample[:1], np.float32)))
    for h in hs:
        h.remove()
    return total[0]


def channel_scores(model: Any, cg: ChannelGraph, method: str = "l1", data: Any = None,
                   loss_fn: Callable[[Any, Any], Any] | None = None) -> dict[int, np.ndarray]:
    """Importance of every channel of every prunable group (higher = keep)."""
    if method not in METHODS:
        raise ConfigError(f"unknown pruning score {method!r}; use one of {', '.join(METHODS)}")
    if method == "l1":
        mods = dict(model.named_modules())
        out: dict[int, np.ndarray] = {}
        for g in cg.prunable():
            s = np.zeros(g.size)
            for name in g.producers:
                w = mods[name].weight.detach().abs().reshape(g.size, -1).sum(1).numpy()
                s += w / (w.mean() + 1e-12)  # each producer counts equally
            out[g.id] = s
        return out
    if data is None:
        raise ConfigError(f"the {method!r} pruning score needs data (training batches)")
    return _data_scores(model, cg, method, data, loss_fn)


def _data_scores(model: Any, cg: ChannelGraph, method: str, data: Any,
                 loss_fn: Callable[[Any, Any], Any] | None) -> dict[int, np.ndarray]:
    import torch

    from sdk.compress.graph import trace
    from sdk.compress.train import iterate

    gm = trace(model)
    wanted = {n: g for n, g in cg.tensors.items() if not cg.groups[g].frozen}
    acc = {g.id: np.zeros(g.size) for g in cg.prunable()}
    seen: list[Any] = []

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n: Any) -> Any:
            out = super().run_node(n)
            if n.name in wanted and isinstance(out, torch.Tensor) and out.dim() >= 2:
                if out.requires_grad:
                    out.retain_grad()
                seen.append((wanted[n.name], out))
            return out

    loss_fn = loss_fn or torch.nn.functional.cross_entropy
    gm.eval()
    for i, (xb, yb) in enumerate(iterate(data, 64)):
        if i >= SCORE_BATCHES:
            break
        seen.clear()
        with torch.set_grad_enabled(method == "taylor"):
            out = Recorder(gm).run(xb)
            if method == "taylor":
                gm.zero_grad()
                loss_fn(out, yb).backward()
        for g, t in seen:
            dims = [d for d in range(t.dim()) if d != 1]
            v = (t * t.grad).sum(dim=[d for d in dims if d != 0]).abs().sum(0) if method == "taylor" and \
                t.grad is not None else t.detach().abs().mean(dim=dims)
            v = v.detach().numpy()
            acc[g] += v / (v.mean() + 1e-12)
    gm.zero_grad()
    return acc


def keep_indices(scores: dict[int, np.ndarray], ratio: float, multiple: int = 1) -> dict[int, np.ndarray]:
    """The channels kept in each group: the highest scores, ``1 - ratio`` of them rounded to the nearest
    ``multiple`` (at least one multiple, never more than the group has), sorted."""
    if not 0 <= ratio < 1:
        raise ConfigError(f"pruning ratio must be in [0, 1), got {ratio}")

    def count(n: int) -> int:
        k = max(multiple, multiple * round(n * (1 - ratio) / multiple)) if n > multiple else round(n * (1 - ratio))
        return min(n, max(1, k))

    return {g: np.sort(np.argsort(-s, kind="stable")[:count(len(s))]) for g, s in scores.items()}


def _index(layout: Layout, keep: dict[int, np.ndarray]) -> np.ndarray:
    parts, offset = [], 0
    for g, size in layout:
        parts.append(offset + (keep[g] if g in keep else np.arange(size)))
        offset += size
    return np.concatenate(parts)


def apply_keep(model: Any, cg: ChannelGraph, keep: dict[int, np.ndarray]) -> Any:
    """Slice every affected module in place (conv/linear weights and biases, batch norm, depthwise groups)."""
    import torch
    from torch import nn

    def take(p: Any, idx: np.ndarray, dim: int) -> Any:
        return None if p is None else nn.Parameter(p.detach().index_select(dim, torch.from_numpy(idx)).clone(),
                                                  requires_grad=p.requires_grad)

    for name, m in model.named_modules():
        lin, lout = cg.inputs.get(name), cg.outputs.get(name)
        if isinstance(m, nn.Conv2d) and m.groups > 1 and lin is not None:  # depthwise
            idx = _index(lin, keep)
            m.weight, m.bias = take(m.weight, idx, 0), take(m.bias, idx, 0)
            m.in_channels = m.out_channels = m.groups = len(idx)
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            if lout is not None:
                idx = _index(lout, keep)
                m.weight, m.bias = take(m.weight, idx, 0), take(m.bias, idx, 0)
                setattr(m, "out_channels" if isinstance(m, nn.Conv2d) else "out_features", len(idx))
            if lin is not None:
                idx = _index(lin, keep)
                m.weight = take(m.weight, idx, 1)
                setattr(m, "in_channels" if isinstance(m, nn.Conv2d) else "in_features", len(idx))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and lin is not None:
            idx = torch.from_numpy(_index(lin, keep))
            m.weight, m.bias = take(m.weight, idx.numpy(), 0), take(m.bias, idx.numpy(), 0)
            m.running_mean = m.running_mean.index_select(0, idx).clone()
            m.running_var = m.running_var.index_select(0, idx).clone()
            m.num_features = len(idx)
    return model


def prune(model: Any, sample: np.ndarray, ratio: float | None = None, *, macs: int | None = None,
          latency_ms: float | None = None, method: str = "l1", data: Any = None, multiple: int = 1) -> Any:
    """A pruned copy of ``model``: ``ratio`` of every prunable group's channels removed, or the smallest
    ratio that reaches ``macs`` (MAC count) or ``latency_ms`` (measured on the exported ONNX, 1 thread).

    ``multiple``: keep channel counts at multiples of this (8 or 16 suit the blocked convolution kernels
    of ONNX Runtime and XNNPACK: 45 channels can run slower than 64; see sdk/compress/README.md)."""
    if sum(v is not None for v in (ratio, macs, latency_ms)) != 1:
        raise ConfigError("prune needs exactly one of ratio, macs or latency_ms")
    cg = channel_graph(model)
    if not cg.prunable():
        raise ConfigError("nothing to prune: every channel group is frozen ("
                          + "; ".join(sorted({g.why for g in cg.groups.values()})) + ")")
    scores = channel_scores(model, cg, method, data)

    def pruned(r: float) -> Any:
        return apply_keep(copy.deepcopy(model), cg, keep_indices(scores, r, multiple))

    if ratio is not None:
        return pruned(ratio)
    measure = (lambda m: torch_macs(m, sample)) if macs is not None else (lambda m: _latency(m, sample))
    target = float(macs if macs is not None else latency_ms)  # type: ignore[arg-type]
    lo, hi = 0.0, 0.95  # bisection on the ratio: cost falls as the ratio grows
    if measure(pruned(hi)) > target:
        raise ConfigError(f"even 95 % pruning does not reach the target {target:g}; the frozen layers cost more")
    for _ in range(7):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if measure(pruned(mid)) > target else (lo, mid)
    out = pruned(hi)
    out.prune_ratio = hi  # type: ignore[attr-defined]
    return out


def _latency(model: Any, sample: np.ndarray) -> float:
    import tempfile
    from pathlib import Path

    from sdk.compress.folder import export_onnx, onnx_latency_ms

    with tempfile.TemporaryDirectory() as tmp:
        return onnx_latency_ms([export_onnx(model, Path(tmp) / "m.onnx", sample)], sample, rounds=2)[0]


def prune_schedule(model: Any, train: Any, sample: np.ndarray, ratio: float, *, steps: int = 3, epochs: int = 1,
                   lr: float = 1e-3, method: str = "l1", seed: int = 0, checkpoint_dir: Any = None,
                   progress: bool = True, multiple: int = 1, loss_fn: Any = None) -> Any:
    """Iterative pruning: ``steps`` times remove a share of the channels (reaching ``ratio`` of the
    original at the last step) and fine-tune ``epochs`` (:func:`sdk.compress.fit`)."""
    from pathlib import Path

    from sdk.compress.train import fit

    kept = 1.0
    for step in range(1, steps + 1):
        target_keep = 1 - ratio * step / steps
        model = prune(model, sample, ratio=1 - target_keep / kept, method=method, data=train,
                      multiple=multiple if step == steps else 1)
        kept = target_keep
        ck = Path(checkpoint_dir) / f"prune{step}.pt" if checkpoint_dir is not None else None
        fit(model, train, epochs, lr, seed=seed + step, checkpoint=ck, progress=progress, loss_fn=loss_fn,
            desc=f"prune {step}/{steps}")
    return model


# ---- unstructured magnitude pruning (the comparison) -------------------------------------------------
def magnitude_prune(model: Any, sparsity: float) -> tuple[Any, Callable[[Any], None]]:
    """Zero the ``sparsity`` fraction of smallest-magnitude weights of every conv/linear layer (a copy).
    Returns the model and ``reapply(model)`` (pass as ``fit(after_step=...)`` to keep the zeros)."""
    import torch
    from torch import nn

    if not 0 <= sparsity < 1:
        raise ConfigError(f"sparsity must be in [0, 1), got {sparsity}")
    model = copy.deepcopy(model)
    masks = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.weight.detach().abs().flatten()
            k = int(sparsity * w.numel())
            thr = w.kthvalue(k).values if k > 0 else torch.tensor(-1.0)
            masks[name] = (m.weight.detach().abs() > thr).float()

    def reapply(net: Any) -> None:
        mods = dict(net.named_modules())
        for name, mask in masks.items():
            mods[name].weight.data.mul_(mask)

    with torch.no_grad():
        reapply(model)
    return model, reapply


def sparse_size_bytes(model: Any) -> dict[str, int]:
    """Sizes of the weights: dense fp32, zlib-compressed fp32 (what a zipped file saves), and a CSR
    encoding (fp32 values + int16 column indices + row pointers) of the conv/linear weights."""
    import zlib

    from torch import nn

    dense = zipped = csr = 0
    for p in model.state_dict().values():
        a = p.detach().numpy().astype(np.float32) if hasattr(p, "numpy") else np.zeros(0, np.float32)
        dense += a.nbytes
        zipped += len(zlib.compress(a.tobytes(), 9))
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            w = m.weight.detach().numpy().reshape(m.weight.shape[0], -1)
            csr += int((w != 0).sum()) * 6 + (w.shape[0] + 1) * 4
    return {"dense_bytes": dense, "zlib_bytes": zipped, "csr_weight_bytes": csr}
