"""Calibration and evaluation data for the optimizer.

From the CLI a data set is a ``.npz`` with array ``x`` (and ``y`` labels for evaluation), or a
folder of ``.npy`` files (``x.npy`` + optional ``y.npy``, or one sample per file). From Python any
:class:`Dataset`, a ``(x, y)`` pair of arrays, or an iterable of samples / ``(sample, label)``
pairs works (an app passes its own loader).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ModelError


@dataclass
class Dataset:
    """Inputs ``x`` [n, *input_shape[1:]] float32 and optional labels ``y`` [n]."""

    x: np.ndarray
    y: np.ndarray | None = None
    source: str = "data"

    def __len__(self) -> int:
        return len(self.x)

    def samples(self, limit: int | None = None) -> Iterator[np.ndarray]:
        """Batch-1 inputs ``[1, ...]`` in order."""
        for i in range(len(self.x) if limit is None else min(limit, len(self.x))):
            yield self.x[i:i + 1]

    def split(self, fraction: float, seed: int = 0) -> tuple[Dataset, Dataset]:
        """A seeded random split into (``fraction`` of the samples, the rest), both non-empty."""
        if len(self.x) < 2:
            raise ModelError(f"{self.source}: {len(self.x)} sample(s) cannot be split into a selection and a "
                             "report part; give at least 2 (better: hundreds)")
        order = np.random.default_rng(seed).permutation(len(self.x))
        k = min(max(1, round(len(self.x) * fraction)), len(self.x) - 1)
        parts = (np.sort(order[:k]), np.sort(order[k:]))
        return tuple(Dataset(self.x[i], None if self.y is None else self.y[i],  # type: ignore[return-value]
                             f"{self.source} ({name} part)") for i, name in zip(parts, ("selection", "report")))

    def check(self, input_shape: list[int] | tuple[int, ...], need_labels: bool = False) -> Dataset:
        """Raise :class:`ModelError` for an empty set, a wrong sample shape or missing labels."""
        if len(self.x) == 0:
            raise ModelError(f"{self.source}: the data set is empty; give at least one sample")
        want = tuple(int(d) if isinstance(d, int) and d > 0 else -1 for d in input_shape[1:])
        if self.x.ndim == len(input_shape) + 1 and self.x.shape[1] == 1:  # samples stored as [1, ...]
            self.x = self.x[:, 0]
        got = tuple(self.x.shape[1:])
        if len(got) != len(want) or any(w not in (-1, g) for w, g in zip(want, got)):
            raise ModelError(f"{self.source}: samples have shape {got}, the model input is "
                             f"{tuple(input_shape)} (one sample = input without the batch axis)")
        if need_labels and self.y is None:
            raise ModelError(f"{self.source}: evaluation data needs labels (array 'y' in the .npz or y.npy)")
        if self.y is not None and len(self.y) != len(self.x):
            raise ModelError(f"{self.source}: {len(self.x)} samples but {len(self.y)} labels")
        return self


def load_dataset(path: str | Path) -> Dataset:
    """Read a ``.npz`` (``x``, optional ``y``) or a folder of ``.npy`` files."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"{p}: data not found (give a .npz with arrays x[, y] or a folder of .npy files)")
    if p.is_file():
        try:
            with np.load(p, allow_pickle=False) as z:
                if "x" not in z.files:
                    raise ModelError(f"{p}: no array 'x' in the .npz (has {z.files})")
                return Dataset(z["x"].astype(np.float32), z["y"] if "y" in z.files else None, str(p))
        except (OSError, ValueError) as e:
            raise ModelError(f"{p}: not a readable .npz file ({e})") from None
    if (p / "x.npy").is_file():
        y = np.load(p / "y.npy") if (p / "y.npy").is_file() else None
        return Dataset(np.load(p / "x.npy").astype(np.float32), y, str(p))
    files = sorted(f for f in p.glob("*.npy"))
    if not files:
        raise ModelError(f"{p}: folder has no .npy files")
    arrays = [np.load(f).astype(np.float32) for f in files]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise ModelError(f"{p}: .npy samples have different shapes {sorted(shapes)[:3]}")
    return Dataset(np.stack(arrays), None, str(p))


def as_dataset(data: Any, name: str = "data") -> Dataset:
    """A :class:`Dataset` from a path, a Dataset, an ``(x, y)`` tuple, an array or an iterable."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, Path)):
        return load_dataset(data)
    if isinstance(data, np.ndarray):
        return Dataset(data.astype(np.float32), None, name)
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray) and (
            data[1] is None or (isinstance(data[1], np.ndarray) and data[0].ndim > data[1].ndim)):
        return Dataset(data[0].astype(np.float32), data[1], name)
    if isinstance(data, Iterable):
        xs, ys = [], []
        for item in data:
            if isinstance(item, (tuple, list)) and len(item) == 2:
                xs.append(np.asarray(item[0], np.float32))
                ys.append(item[1])
            else:
                xs.append(np.asarray(item, np.float32))
        if len({a.shape for a in xs}) > 1:
            raise ModelError(f"{name}: samples have different shapes {sorted({a.shape for a in xs})[:3]}")
        x = np.stack(xs) if xs else np.zeros((0,), np.float32)
        return Dataset(x, np.asarray(ys) if ys else None, name)
    raise ModelError(f"{name}: cannot use {type(data).__name__} as data (give a path, arrays or an iterable)")
