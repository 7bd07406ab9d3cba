"""Weight clustering (weight sharing): each conv / linear layer keeps at most ``k`` distinct weight
values (a k-means codebook, 16-64 typical), stored as log2(k)-bit indices + the codebook.

    from sdk.compress.cluster import cluster_weights
    model, books = cluster_weights(model, k=16)
    books.attach(model)                                   # gradients averaged per cluster
    fit(model, train, epochs=2, lr=1e-4, after_step=books.snap)   # values stay shared
    books.detach(); books.size_bytes(model)
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np

from sdk.errors import ConfigError

ITERATIONS = 30


def kmeans_1d(values: np.ndarray, k: int, iterations: int = ITERATIONS) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on scalars, centroids initialised evenly over [min, max] (linear init keeps the rare
    large weights, which density-based inits lose). Returns (centroids, assignment)."""
    v = values.astype(np.float64).ravel()
    c = np.linspace(v.min(), v.max(), min(k, max(1, len(np.unique(v)))))
    assign = np.zeros(len(v), np.int64)
    for _ in range(iterations):
        edges = (c[1:] + c[:-1]) / 2
        assign = np.searchsorted(edges, v)
        counts = np.bincount(assign, minlength=len(c))
        sums = np.bincount(assign, weights=v, minlength=len(c))
        new = np.where(counts > 0, sums / np.maximum(counts, 1), c)
        if np.allclose(new, c):
            break
        c = np.sort(new)
    edges = (c[1:] + c[:-1]) / 2
    return c, np.searchsorted(edges, v)


class Codebooks:
    """Per-layer cluster assignments; keeps the values shared while fine-tuning."""

    def __init__(self, k: int, assignments: dict[str, Any]) -> None:
        self.k, self.assignments = k, assignments
        self._hooks: list[Any] = []

    def attach(self, model: Any) -> None:
        """Average each layer's weight gradient per cluster (every member of a cluster moves together)."""
        mods = dict(model.named_modules())
        for name, a in self.assignments.items():
            self._hooks.append(mods[name].weight.register_hook(lambda g, a=a: _cluster_mean(g, a)))

    def detach(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()

    def snap(self, model: Any) -> None:
        """Set every weight to its cluster's mean (removes float drift; call after each optimizer step)."""
        mods = dict(model.named_modules())
        for name, a in self.assignments.items():
            w = mods[name].weight
            w.data.copy_(_cluster_mean(w.data, a))

    def size_bytes(self, model: Any) -> dict[str, int]:
        """Clustered layers as log2(k)-bit indices + fp32 codebooks, other parameters fp32."""
        bits = max(1, math.ceil(math.log2(self.k)))
        mods = dict(model.named_modules())
        clustered = sum(mods[n].weight.numel() for n in self.assignments)
        total = sum(p.numel() for p in model.parameters())
        return {"fp32_bytes": total * 4,
                "clustered_bytes": math.ceil(clustered * bits / 8) + 4 * self.k * len(self.assignments)
                + 4 * (total - clustered)}


def _cluster_mean(t: Any, assign: Any) -> Any:
    import torch

    flat = t.reshape(-1)
    n = int(assign.max()) + 1
    sums = torch.zeros(n, dtype=flat.dtype).index_add_(0, assign, flat)
    counts = torch.bincount(assign, minlength=n).clamp(min=1).to(flat.dtype)
    return (sums / counts)[assign].reshape(t.shape)


def cluster_weights(model: Any, k: int = 16, *, min_weights: int = 64) -> tuple[Any, Codebooks]:
    """A copy of ``model`` whose conv / linear weights (layers with at least ``min_weights``) take at most
    ``k`` distinct values each, and the :class:`Codebooks` that keep them so during fine-tuning."""
    import torch
    from torch import nn

    if not 2 <= k <= 256:
        raise ConfigError(f"clusters per layer must be in 2..256, got {k}")
    model = copy.deepcopy(model)
    assignments = {}
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.numel() >= min_weights:
            c, a = kmeans_1d(m.weight.detach().numpy(), k)
            m.weight.data = torch.from_numpy(c[a].reshape(m.weight.shape)).float()
            assignments[name] = torch.from_numpy(a)
    return model, Codebooks(k, assignments)


def distinct_values(model: Any) -> dict[str, int]:
    """Distinct weight values of every conv / linear layer."""
    from torch import nn

    return {n: int(np.unique(m.weight.detach().numpy()).size) for n, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))}
