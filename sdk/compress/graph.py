"""Channel groups of a torch model, found by tracing it with torch.fx: which output channels of which
layers must be removed together (the coupling structured pruning has to respect).

A *group* is one channel space: the output channels of its producers (regular convolutions, linear
layers) and everything that follows them channel for channel (batch norm, activations, pooling,
depthwise convolutions, dropout). A residual ``add`` merges the spaces of its two inputs into one
group; a ``cat`` on the channel axis gives a tensor made of segments of several groups. A group
whose channels reach the model output, a reshape/view, an unknown operation or a grouped convolution
is *frozen* (never pruned), so pruning never breaks the network.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

from sdk.errors import ModelError

Layout = list[tuple[int, int]]  # (group id, channels) segments of a tensor's channel axis

PASS_MODULES = ("BatchNorm1d", "BatchNorm2d", "ReLU", "ReLU6", "LeakyReLU", "SiLU", "GELU", "Hardswish", "Sigmoid",
                "Tanh", "Hardsigmoid", "Dropout", "Dropout2d", "Identity", "MaxPool2d", "AvgPool2d",
                "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Flatten")
PASS_FUNCTIONS = ("relu", "relu6", "silu", "gelu", "sigmoid", "tanh", "hardswish", "dropout", "max_pool2d",
                  "avg_pool2d", "adaptive_avg_pool2d", "flatten")
ELEMENTWISE = (operator.add, operator.sub, operator.mul, operator.truediv)


@dataclass
class Group:
    id: int
    size: int
    producers: list[str] = field(default_factory=list)  # modules whose output channels are this group
    frozen: bool = False
    why: str = ""


@dataclass
class ChannelGraph:
    """The traced model's groups and, per module, the layouts of its input and output channels."""

    groups: dict[int, Group]
    inputs: dict[str, Layout]  # module name -> layout of its input channels
    outputs: dict[str, Layout]  # module name -> layout of its output channels
    tensors: dict[str, int]  # fx node name -> group, for nodes whose whole tensor is one group (importance)

    def prunable(self) -> list[Group]:
        return [g for g in self.groups.values() if not g.frozen]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, a: int) -> int:
        while self.parent.get(a, a) != a:
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def trace(model: Any) -> Any:
    import torch.fx

    try:
        return torch.fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001 - fx raises TraceError, TypeError, NotImplementedError...
        raise ModelError(f"structured pruning needs a model torch.fx can trace ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200]}); wrap data-dependent control flow in a leaf module") from None


def channel_graph(model: Any) -> ChannelGraph:
    """Trace ``model`` and find its channel groups (see the module docstring)."""
    from torch import nn

    gm = trace(model)
    mods = dict(gm.named_modules())
    uf, sizes, frozen = _UnionFind(), {}, {}
    layouts: dict[str, Layout] = {}
    ins: dict[str, Layout] = {}
    outs: dict[str, Layout] = {}
    producers: dict[int, list[str]] = {}

    def new_group(size: int, producer: str) -> Layout:
        gid = len(sizes)
        sizes[gid] = size
        producers.setdefault(gid, []).append(producer)
        return [(gid, size)]

    def freeze(lay: Layout | None, why: str) -> None:
        for g, _ in lay or []:
            frozen.setdefault(g, why)

    def tensor_args(node: Any) -> list[Any]:
        return [a for a in node.args if hasattr(a, "name") and a.name in layouts]

    for node in gm.graph.nodes:
        args = tensor_args(node)
        first = layouts.get(args[0].name) if args else None
        if node.op == "placeholder":
            continue
        if node.op == "output":
            for a in node.args[0] if isinstance(node.args[0], (tuple, list)) else [node.args[0]]:
                freeze(layouts.get(getattr(a, "name", "")), "reaches the model output")
            continue
        if node.op == "call_module":
            m = mods[node.target]
            kind = type(m).__name__
            if isinstance(m, nn.Conv2d) and m.groups == 1 or isinstance(m, nn.Linear):
                if first is not None:
                    ins[node.target] = first
                size = m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
                layouts[node.name] = outs[node.target] = new_group(size, node.target)
                continue
            if isinstance(m, nn.Conv2d) and first is not None and m.groups == m.in_channels == m.out_channels:
                ins[node.target] = outs[node.target] = layouts[node.name] = first  # depthwise: follows its input
                continue
            if kind in PASS_MODULES and first is not None:
                if kind.startswith("BatchNorm"):
                    ins[node.target] = first
                layouts[node.name] = first
                continue
            if isinstance(m, nn.Conv2d):
                freeze(first, f"grouped convolution {node.target}")
                layouts[node.name] = outs[node.target] = new_group(m.out_channels, node.target)
                frozen.setdefault(layouts[node.name][0][0], f"grouped convolution {node.target}")
                continue
        elif node.op in ("call_function", "call_method"):
            name = getattr(node.target, "__name__", str(node.target))
            if node.target in ELEMENTWISE or name in ("add", "sub", "mul", "div"):
                lays = [layouts[a.name] for a in args]
                if len(lays) == 2 and [s for _, s in lays[0]] == [s for _, s in lays[1]]:
                    for (a, _), (b, _) in zip(lays[0], lays[1]):
                        uf.union(a, b)
                    layouts[node.name] = lays[0]
                    continue
                if len(lays) == 1:  # with a scalar or a constant
                    layouts[node.name] = lays[0]
                    continue
            elif name in PASS_FUNCTIONS and first is not None and (name != "flatten" or _flat_ok(node)):
                layouts[node.name] = first
                continue
            elif name == "cat" and _cat_dim(node) == 1 and isinstance(node.args[0], (tuple, list)) and all(
                    getattr(a, "name", None) in layouts for a in node.args[0]):
                layouts[node.name] = [seg for a in node.args[0] for seg in layouts[a.name]]
                continue
        for a in args:  # anything else: its channel-carrying inputs are frozen
            freeze(layouts[a.name], f"used by {node.op} {getattr(node.target, '__name__', node.target)}")
    return _finish(uf, sizes, frozen, producers, ins, outs, layouts)


def _flat_ok(node: Any) -> bool:
    """flatten(x, 1) after a global pool keeps channels as features (anything else is frozen)."""
    src = node.args[0]
    if not (tuple(node.args[1:2]) in ((1,), ()) or node.kwargs.get("start_dim") == 1):
        return False
    if src.op == "call_module":
        return "Adaptive" in type(src.graph.owning_module.get_submodule(src.target)).__name__
    return getattr(src.target, "__name__", "") in ("adaptive_avg_pool2d", "adaptive_max_pool2d") and \
        tuple(src.args[1:2]) in ((1,), ((1, 1),))


def _cat_dim(node: Any) -> int:
    return int(node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0))


def _finish(uf: _UnionFind, sizes: dict[int, int], frozen: dict[int, str], producers: dict[int, list[str]],
            ins: dict[str, Layout], outs: dict[str, Layout], layouts: dict[str, Layout]) -> ChannelGraph:
    def canon(lay: Layout) -> Layout:
        return [(uf.find(g), s) for g, s in lay]

    groups: dict[int, Group] = {}
    for g, size in sizes.items():
        root = groups.setdefault(uf.find(g), Group(uf.find(g), size))
        root.producers += producers.get(g, [])
        if g in frozen and not root.frozen:
            root.frozen, root.why = True, frozen[g]
    tensors = {n: canon(lay)[0][0] for n, lay in layouts.items() if len(lay) == 1}
    return ChannelGraph(groups, {k: canon(v) for k, v in ins.items()}, {k: canon(v) for k, v in outs.items()},
                        tensors)
