"""Early exits (BranchyNet-style) and the exit policy shared with two-model cascades.

    net = add_exits(task.build(), at=["5", "6"], n_classes=12, input_shape=(1, 1, 49, 40))
    fit(net, train, epochs=10, lr=3e-3, loss_fn=exit_loss())        # joint loss over every exit
    probs = exit_probs(net, val_x)                                 # softmax per exit, [n, classes] each
    choice = choose_threshold(probs, val_y, costs=exit_macs(net, (1, 1, 49, 40)), budget_points=0.5)
    export_exits(net, "models/kws-exits", (1, 1, 49, 40))           # stage_i.onnx / head_i.onnx

A network given as ``nn.Sequential`` is cut at the named children into stages; after every stage but
the last a small head (average pool + linear, an optional 1×1 conv first) classifies. At inference a
sample leaves at the first head whose top softmax probability reaches the threshold; the last stage
always answers. One threshold serves every exit (and a cascade is the same policy over two models).

**Choosing the threshold** (:func:`choose_threshold`): on validation data, the threshold with the
lowest average cost (MACs) whose accuracy stays within ``budget_points`` of the last exit's (the full
model's), counting a safety margin of ``z`` standard errors of the paired accuracy difference, so that
the choice also holds on unseen data. Report it on a separate split (:func:`simulate`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ConfigError, ModelError


# ---- the policy (numpy only) ---------------------------------------------------------------------------
def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class PolicyResult:
    threshold: float
    accuracy: float  # percent
    reference_accuracy: float  # the last exit alone, percent
    exit_rates: list[float]  # fraction of samples leaving at each exit
    avg_cost: float  # mean cost per sample (e.g. MACs)
    full_cost: float  # the cost of running every stage
    n: int

    @property
    def loss_points(self) -> float:
        return self.reference_accuracy - self.accuracy

    @property
    def saved(self) -> float:
        """Fraction of the full cost saved on average."""
        return 1 - self.avg_cost / self.full_cost if self.full_cost else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "loss_points": self.loss_points, "saved": self.saved}


def exit_index(probs: Sequence[np.ndarray], threshold: float) -> np.ndarray:
    """For each sample, the first exit whose top probability reaches ``threshold`` (the last otherwise)."""
    n = len(probs[0])
    where = np.full(n, len(probs) - 1)
    open_ = np.ones(n, bool)
    for k, p in enumerate(probs[:-1]):
        leave = open_ & (p.max(axis=1) >= threshold)
        where[leave] = k
        open_ &= ~leave
    return where


def simulate(probs: Sequence[np.ndarray], labels: np.ndarray, threshold: float,
             costs: Sequence[float]) -> PolicyResult:
    """Accuracy, exit rates and average cost of the policy at ``threshold``. ``costs[k]``: the cumulative
    cost of answering at exit ``k`` (every stage and head run up to it)."""
    if len(probs) != len(costs) or len(probs) < 2:
        raise ConfigError(f"give one probability array and one cumulative cost per exit (>= 2), got "
                          f"{len(probs)} and {len(costs)}")
    where = exit_index(probs, threshold)
    stacked = np.stack([p.argmax(1) for p in probs])
    pred = stacked[where, np.arange(len(where))]
    labels = np.asarray(labels).reshape(-1)
    rates = [float(np.mean(where == k)) for k in range(len(probs))]
    return PolicyResult(float(threshold), float(np.mean(pred == labels) * 100),
                        float(np.mean(stacked[-1] == labels) * 100), rates,
                        float(np.asarray(costs, float)[where].mean()), float(costs[-1]), len(labels))


def choose_threshold(probs: Sequence[np.ndarray], labels: np.ndarray, costs: Sequence[float],
                     budget_points: float = 0.5, z: float = 2.0, grid: int = 200) -> PolicyResult:
    """The cheapest threshold whose accuracy loss against the last exit, plus ``z`` standard errors of
    the paired difference, is at most ``budget_points`` on this (validation) data. A threshold above 1
    (never exit early) always qualifies, so there is always an answer."""
    if budget_points < 0:
        raise ConfigError(f"the accuracy budget must be >= 0 points, got {budget_points}")
    labels = np.asarray(labels).reshape(-1)
    n, idx, cost = len(labels), np.arange(len(labels)), np.asarray(costs, float)
    ok = np.stack([p.argmax(1) == labels for p in probs])
    tops = np.concatenate([p.max(axis=1) for p in probs[:-1]])
    cands = np.unique(np.concatenate([np.quantile(tops, np.linspace(0, 1, grid)), [np.nextafter(1.0, 2.0)]]))
    best_t, best_cost = float(cands[-1]), float(cost[-1])
    for t in cands:
        where = exit_index(probs, float(t))
        d = ok[-1].astype(float) - ok[where, idx]
        se = d.std(ddof=1) / np.sqrt(n) * 100 if n > 1 else 0.0
        avg = float(cost[where].mean())
        if d.mean() * 100 + z * se <= budget_points and avg < best_cost - 1e-9:
            best_t, best_cost = float(t), avg
    return simulate(probs, labels, best_t, costs)


# ---- networks with exits (torch) ----------------------------------------------------------------------
def _split(net: Any, at: Sequence[str | int]) -> list[Any]:
    from torch import nn

    if not isinstance(net, nn.Sequential):
        raise ModelError(f"add_exits needs an nn.Sequential backbone (got {type(net).__name__}); wrap the "
                         "network's parts in nn.Sequential so the branch points are children")
    names = [name for name, _ in net.named_children()]
    cuts = []
    for a in at:
        if str(a) not in names:
            raise ModelError(f"add_exits: no child named {a!r} (children: {', '.join(names)})")
        cuts.append(names.index(str(a)) + 1)
    if sorted(set(cuts)) != cuts or cuts[-1] >= len(names):
        raise ModelError("add_exits: branch points must be distinct children in order, before the last one")
    children = list(net.children())
    bounds = [0, *cuts, len(children)]
    return [nn.Sequential(*children[a:b]) for a, b in itertools.pairwise(bounds)]


def make_head(channels: int, n_classes: int, spatial: bool, hidden: int | None = None) -> Any:
    """A small exit classifier: [1×1 conv + ReLU] + global average pool + linear (or a linear on vectors)."""
    from torch import nn

    if not spatial:
        return nn.Linear(channels, n_classes)
    layers: list[Any] = []
    if hidden:
        layers += [nn.Conv2d(channels, hidden, 1), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(hidden or channels, n_classes))


def add_exits(net: Any, at: Sequence[str | int], n_classes: int, input_shape: Sequence[int],
              hidden: int | None = None) -> Any:
    """``net`` with an exit head after each child named in ``at`` (see the module docstring)."""
    import torch
    from torch import nn

    stages = _split(net, at)
    heads = []
    with torch.no_grad():
        x = torch.zeros(tuple(input_shape))
        for stage in stages[:-1]:
            x = stage.eval()(x)
            heads.append(make_head(int(x.shape[1]), n_classes, x.dim() == 4, hidden))
    return _exit_net(nn.ModuleList(stages), nn.ModuleList(heads))


def _exitnet_cls() -> Any:
    from torch import nn

    class _ExitNet(nn.Module):
        """Stages and heads; ``forward`` returns the logits of every exit, the last exit last."""

        def __init__(self, stages: Any, heads: Any) -> None:
            super().__init__()
            self.stages, self.heads = stages, heads

        def forward(self, x: Any) -> list[Any]:
            outs = []
            for k, stage in enumerate(self.stages):
                x = stage(x)
                outs.append(self.heads[k](x) if k < len(self.heads) else x)
            return outs

    return _ExitNet


def _exit_net(stages: Any, heads: Any) -> Any:
    return _exitnet_cls()(stages, heads)


def exit_loss(weights: Sequence[float] | None = None) -> Callable[[Any, Any, Any], Any]:
    """The joint loss for ``sdk.compress.fit(loss_fn=...)``: a weighted sum of every exit's cross entropy."""
    import torch

    def loss(model: Any, x: Any, y: Any) -> Any:
        outs = model(x)
        w = list(weights) if weights is not None else [1.0] * len(outs)
        if len(w) != len(outs):
            raise ConfigError(f"exit_loss: {len(w)} weights for {len(outs)} exits")
        return sum(wi * torch.nn.functional.cross_entropy(o, y) for wi, o in zip(w, outs, strict=True))

    return loss


def exit_probs(model: Any, x: np.ndarray, batch_size: int = 256) -> list[np.ndarray]:
    """Softmax probabilities of every exit for ``x`` (eval mode, no gradients)."""
    import torch

    model.eval()
    outs: list[list[np.ndarray]] = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            res = model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size], np.float32)))
            res = res if isinstance(res, (list, tuple)) else [res]
            for k, o in enumerate(res):
                if len(outs) <= k:
                    outs.append([])
                outs[k].append(softmax(o.numpy()))
    return [np.concatenate(o) for o in outs]


def export_exits(net: Any, folder: str | Path, input_shape: Sequence[int]) -> tuple[list[dict[str, Any]], Path]:
    """Write ``stage_K.onnx`` (and ``head_K.onnx`` after every stage but the last) into ``folder``, plus
    ``model.fp32.onnx`` (the network without its heads). Returns the stage entries for the manifest's
    ``exits`` field (files relative to the folder, MACs of each stage and head) and the full model's path."""
    import torch

    from sdk.compress.folder import export_onnx, onnx_macs

    folder = Path(folder)
    net.eval()
    stages: list[dict[str, Any]] = []
    x = np.zeros(tuple(input_shape), np.float32)
    for k, stage in enumerate(net.stages):
        entry: dict[str, Any] = {"body": {"file": f"stage_{k}.onnx"}}
        body = export_onnx(stage, folder / f"stage_{k}.onnx", x)
        entry["body"]["macs"] = onnx_macs(body)
        with torch.no_grad():
            x = stage(torch.from_numpy(x)).numpy()
        if k < len(net.heads):
            head = export_onnx(net.heads[k], folder / f"head_{k}.onnx", x)
            entry["head"] = {"file": head.name, "macs": onnx_macs(head)}
        stages.append(entry)
    full = export_onnx(torch.nn.Sequential(*net.stages), folder / "model.fp32.onnx",
                       np.zeros(tuple(input_shape), np.float32))
    return stages, full


def cumulative_macs(stages: Sequence[dict[str, Any]]) -> list[float]:
    """Cost of answering at each exit: every body up to it plus that exit's head (the last: its body)."""
    out, run = [], 0.0
    for s in stages:
        run += float((s.get("body") or {}).get("macs", 0))
        out.append(run + float((s.get("head") or {}).get("macs", 0)))
        # heads passed on the way are paid too
        run += float((s.get("head") or {}).get("macs", 0))
    return out
