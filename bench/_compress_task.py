"""The compression benches' task: keyword spotting on the speech app's integer front-end features,
with a model FAMILY around the app's DS-CNN (shared by bench/compress.py and the architecture search).

    from bench._compress_task import load_task
    task = load_task(seed=0, quick=True)
    net = task.build()                           # the speech app's network (width 64, depth 4)
    small = task.build(width=0.5, depth=3, kernel=5, stride=3)

Splits are the app's speaker-disjoint ones: ``train``; ``val`` = the app's *select* split (use it to
choose anything: thresholds, architectures, ranks); ``test`` = the app's *val* split (report only).
Features come from the app's cache (``/work/train/speech/*.npy``, built by ``apps.speech.train``'s
own cache code when absent). The training features are the clean copy of every clip (copy 0 of the
cache); ``quick=True`` keeps a class-stratified quarter of them.

Knobs of :meth:`Task.build`: ``width`` (multiplier of the app's 64 channels), ``depth`` (depthwise
separable blocks), ``kernel`` (depthwise kernel size), ``stride`` (of the first convolution: the
input resolution the blocks see; 2 is the app's), ``residual`` (skip connections around the blocks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

WORK = Path("/work/train/speech")
QUICK_FRACTION = 0.25


@dataclass
class Task:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_shape: tuple[int, ...]
    n_classes: int
    labels: tuple[str, ...] = field(default=())
    copies: Any = None  # uint8 [n, copies, 49, 40]: the cache's clean + augmented feature copies of x_train


    def build(self, width: float = 1.0, depth: int = 4, kernel: int = 3, stride: int = 2,
              residual: bool = False, dropout: float = 0.2) -> Any:
        """A member of the DS-CNN family (defaults: the speech app's network)."""
        return build_net(self.n_classes, width, depth, kernel, stride, residual, dropout)

    def pretrained(self, n_stats: int = 512) -> Any:
        """The speech app's shipped network (apps/speech/model/model.fp32.onnx, 24 epochs with augmentation)
        as a trainable member of the family (see :func:`load_app_model`)."""
        idx = np.sort(np.random.default_rng(0).choice(len(self.x_train), min(n_stats, len(self.x_train)), replace=False))
        return load_app_model(self.build(), self.x_train[idx])

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x_train, self.y_train

    def augmented(self, seed: int = 0, batch_size: int = 64) -> Augmented:
        """The training clips as the app trains on them (see :class:`Augmented`)."""
        return Augmented(self.copies, self.y_train, batch_size, seed)

    @property
    def val(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x_val, self.y_val

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x_test, self.y_test


def build_net(n_classes: int = 12, width: float = 1.0, depth: int = 4, kernel: int = 3, stride: int = 2,
              residual: bool = False, dropout: float = 0.2) -> Any:
    """normalise -> conv 10x4 /stride -> ``depth`` x (depthwise k x k + pointwise [+ skip]) -> pool -> linear."""
    import torch
    from torch import nn

    from apps.speech.train import IN_MEAN, IN_STD

    class Normalize(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x - IN_MEAN) / IN_STD

    class Block(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.dw = nn.Conv2d(c, c, kernel, 1, kernel // 2, groups=c, bias=False)
            self.bn1 = nn.BatchNorm2d(c)
            self.pw = nn.Conv2d(c, c, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c)
            self.act = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.act(self.bn2(self.pw(self.act(self.bn1(self.dw(x))))))
            return x + y if residual else y

    c = max(4, round(64 * width))
    return nn.Sequential(Normalize(), nn.Conv2d(1, c, (10, 4), (stride, stride), bias=False), nn.BatchNorm2d(c),
                         nn.ReLU(), *[Block(c) for _ in range(depth)], nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Dropout(dropout), nn.Linear(c, n_classes))


class Augmented:
    """Training batches with the speech app's augmentation: per clip a random one of the cache's feature
    copies (copy 0 clean, the others with noise / gain / shift) and SpecAugment (one time and one
    frequency band). For :func:`sdk.compress.fit`: ``set_epoch`` seeds the epoch, so a resumed run
    sees the same batches as an uninterrupted one."""

    def __init__(self, copies: np.ndarray, y: np.ndarray, batch_size: int = 64, seed: int = 0) -> None:
        self.copies, self.y, self.batch_size, self.seed, self.epoch = copies, y, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.y) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Any:
        from apps.speech.train import spec_augment, to_input

        rng = np.random.default_rng([self.seed, self.epoch, 7])
        order = rng.permutation(len(self.y))
        for i in range(0, len(order), self.batch_size):
            idx = np.sort(order[i:i + self.batch_size])
            x = to_input(self.copies[idx, rng.integers(0, self.copies.shape[1], len(idx))])
            yield spec_augment(x, rng), self.y[idx]


APP_MODEL = Path(__file__).resolve().parent.parent / "apps" / "speech" / "model" / "model.fp32.onnx"


def load_app_model(net: Any, x_stats: np.ndarray, path: Path = APP_MODEL) -> Any:
    """Load the app's exported (BN-folded, normalisation-folded) weights into ``net`` (width 1, depth 4).

    Conv i of the ONNX graph goes to conv i of ``net``; its folded bias ``b`` goes into the batch norm
    after it, re-parametrised on the statistics (mean m, variance v) of that conv's outputs on ``x_stats``:
    running stats (m, v), weight sqrt(v + eps), bias m + b. The eval function is the shipped one, and
    training-mode batch statistics start close to the running ones, so fine-tuning starts from it."""
    import onnx
    import torch
    from onnx import numpy_helper

    from apps.speech.train import IN_MEAN, IN_STD

    g = onnx.load(str(path)).graph
    init = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    onnx_convs = [n for n in g.node if n.op_type == "Conv"]
    gemm = next(n for n in g.node if n.op_type == "Gemm")
    biases = []
    with torch.no_grad():
        for k, (conv, node) in enumerate(zip(convs, onnx_convs, strict=True)):
            w, b = init[node.input[1]].copy(), init[node.input[2]].copy()
            if k == 0:  # undo the folded normalisation: conv(W', x) + b' = conv(W' * s, (x - m) / s) + b' + m * sum(W')
                b = b + IN_MEAN * w.reshape(len(w), -1).sum(1)
                w = w * IN_STD
            conv.weight.copy_(torch.from_numpy(w))
            biases.append(torch.from_numpy(b))
        lin = net[-1]
        lin.weight.copy_(torch.from_numpy(init[gemm.input[1]].copy()))
        lin.bias.copy_(torch.from_numpy(init[gemm.input[2]].copy()))
        stats: dict[int, Any] = {}
        hooks = [c.register_forward_hook(lambda _m, _i, o, k=k: stats.__setitem__(k, o)) for k, c in enumerate(convs)]
        for bn in bns:  # identity + bias while the statistics are collected
            bn.running_mean.zero_(), bn.running_var.fill_(1 - bn.eps), bn.weight.fill_(1.0)
        for bn, b in zip(bns, biases, strict=True):
            bn.bias.copy_(b)
        net.eval()
        net(torch.from_numpy(np.ascontiguousarray(x_stats, np.float32)))
        for h in hooks:
            h.remove()
        for k, (bn, b) in enumerate(zip(bns, biases, strict=True)):
            mean, var = stats[k].mean(dim=(0, 2, 3)), stats[k].var(dim=(0, 2, 3), unbiased=False)
            bn.running_mean.copy_(mean), bn.running_var.copy_(var)
            bn.weight.copy_((var + bn.eps).sqrt()), bn.bias.copy_(mean + b)
    return net.eval()


def load_task(seed: int = 0, quick: bool = False, work: Path = WORK) -> Task:
    """The keyword-spotting task (see the module docstring); ``seed`` picks the quick subsample."""
    from apps.speech.data import LABELS
    from apps.speech.train import to_input

    names = ("train", "select", "val")
    if not all((work / f"{n}_x.npy").exists() for n in names):
        from apps.speech.train import SHARED, build_cache
        build_cache(work, SHARED, copies=10, seed=0, extra_silence=800)
    tx = np.load(work / "train_x.npy", mmap_mode="r")  # [clips, copies, 49, 40]
    ty = np.load(work / "train_y.npy")
    idx = np.arange(len(ty))
    if quick:
        rng = np.random.default_rng(seed)
        idx = np.sort(np.concatenate([rng.choice(np.flatnonzero(ty == c), max(1, int(QUICK_FRACTION * (ty == c).sum())),
                                                 replace=False) for c in np.unique(ty)]))
    x_train, y_train = to_input(tx[idx, 0]), ty[idx].astype(np.int64)
    sx, sy = to_input(np.load(work / "select_x.npy")[:, 0]), np.load(work / "select_y.npy").astype(np.int64)
    vx, vy = to_input(np.load(work / "val_x.npy")[:, 0]), np.load(work / "val_y.npy").astype(np.int64)
    return Task("speech-kws", x_train, y_train, sx, sy, vx, vy, tuple(x_train.shape[1:]), len(LABELS),
                tuple(LABELS), copies=tx[idx])
