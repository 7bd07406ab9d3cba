"""The one training / fine-tuning loop of ``sdk.compress`` (every technique fine-tunes through it).

    from sdk.compress import fit, evaluate
    fit(model, (x_train, y_train), epochs=3, lr=1e-3, checkpoint="run.pt")   # resumable
    acc = evaluate(model, (x_val, y_val))                                      # top-1, 0..1

``train_data`` is ``(x, y)`` numpy arrays (shuffled per epoch from ``seed``; a resumed run sees
the same batches as an uninterrupted one) or any re-iterable of ``(x, y)`` batches (a DataLoader).
A re-iterable with a ``set_epoch(epoch)`` method (e.g. one drawing fresh augmentation every epoch) is
told the epoch before each pass, so a resumed run sees the same batches too.
``loss_fn(model, x, y) -> loss`` replaces cross entropy (distillation passes one); ``after_step(model)``
runs after every optimizer step (clustering and unstructured pruning re-apply their constraint).
AdamW with a cosine schedule; a checkpoint (weights, optimizer, schedule, RNG) after every epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ConfigError, ModelError

Batches = Any  # (x, y) arrays or an iterable of (x, y) batches
LossFn = Callable[[Any, Any, Any], Any]


def _batches(data: Batches, batch_size: int, rng: np.random.Generator | None) -> Iterator[tuple[Any, Any]]:
    import torch

    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray):
        x, y = data
        order = rng.permutation(len(x)) if rng is not None else np.arange(len(x))
        for i in range(0, len(order), batch_size):
            idx = np.sort(order[i:i + batch_size])
            yield torch.from_numpy(np.ascontiguousarray(x[idx], np.float32)), torch.from_numpy(np.asarray(y[idx]))
        return
    for item in data:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ConfigError(f"a training batch must be (x, y), got {type(item).__name__}; give (x, y) arrays "
                              "or an iterable of (x, y) batches")
        yield torch.as_tensor(item[0], dtype=torch.float32), torch.as_tensor(item[1])


def _n_batches(data: Batches, batch_size: int) -> int:
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], np.ndarray):
        return -(-len(data[0]) // batch_size)
    try:
        return len(data)
    except TypeError:
        raise ConfigError("train_data must be (x, y) arrays or a sized iterable of (x, y) batches "
                          "(e.g. a torch DataLoader)") from None


def cross_entropy(model: Any, x: Any, y: Any) -> Any:
    import torch

    return torch.nn.functional.cross_entropy(model(x), y)


def fit(model: Any, train_data: Batches, epochs: int, lr: float, *, loss_fn: LossFn | None = None,
        checkpoint: str | Path | None = None, resume: bool = True, progress: bool = True, seed: int = 0,
        batch_size: int = 64, weight_decay: float = 1e-4,
        after_step: Callable[[Any], None] | None = None, desc: str = "fit") -> Any:
    """Train ``model`` in place for ``epochs`` (AdamW, cosine decay from ``lr``) and return it.

    With ``checkpoint`` the state is saved after every epoch; ``resume`` continues from it (the same
    final weights as an uninterrupted run on the same data and seed)."""
    import torch
    from tqdm import tqdm

    if epochs < 0 or lr <= 0:
        raise ConfigError(f"fit needs epochs >= 0 and lr > 0 (got {epochs}, {lr})")
    torch.manual_seed(seed)
    steps = max(1, epochs * _n_batches(train_data, batch_size))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    start, log = 0, []
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and resume and ckpt.exists():
        start, log = _load(ckpt, model, opt, sched)
    loss_fn = loss_fn or cross_entropy
    for epoch in range(start, epochs):
        rng = np.random.default_rng(seed * 100003 + epoch)
        torch.manual_seed(seed * 100003 + epoch)  # dropout masks: the same after a resume
        if hasattr(train_data, "set_epoch"):
            train_data.set_epoch(epoch)
        model.train()
        total, n = 0.0, 0
        bar = tqdm(_batches(train_data, batch_size, rng), total=_n_batches(train_data, batch_size),
                   desc=f"{desc} {epoch + 1}/{epochs}", unit="batch", disable=not progress, leave=False,
                   mininterval=5)
        for xb, yb in bar:
            loss = loss_fn(model, xb, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if after_step is not None:
                with torch.no_grad():
                    after_step(model)
            total, n = total + loss.item() * len(yb), n + len(yb)
        log.append({"epoch": epoch + 1, "loss": total / max(n, 1)})
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
            tmp = ckpt.with_suffix(ckpt.suffix + ".tmp")
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "epoch": epoch + 1, "log": log}, tmp)
            tmp.replace(ckpt)  # a crash mid-save leaves the previous epoch's checkpoint
    model.eval()
    model.fit_log = log  # type: ignore[attr-defined]
    return model


def _load(ckpt: Path, model: Any, opt: Any, sched: Any) -> tuple[int, list[dict[str, Any]]]:
    import torch

    try:
        state = torch.load(ckpt, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
    except (OSError, RuntimeError, KeyError, ValueError) as e:
        raise ModelError(f"{ckpt}: cannot resume from this checkpoint ({str(e).splitlines()[0][:200]}); "
                         "delete it or pass resume=False (--restart) to start over") from None
    return int(state["epoch"]), list(state["log"])


def predict_logits(model: Any, data: Batches, batch_size: int = 256) -> np.ndarray:
    """Model outputs for every sample, in order (eval mode, no gradients)."""
    import torch

    model.eval()
    with torch.no_grad():
        outs = [model(xb).numpy() for xb, _ in _batches(data, batch_size, None)]
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


def evaluate(model: Any, data: Batches, batch_size: int = 256) -> float:
    """Top-1 accuracy (0..1) of a classifier on ``(x, y)`` arrays or ``(x, y)`` batches."""
    ys = data[1] if isinstance(data, tuple) and len(data) == 2 else np.concatenate([np.asarray(y) for _, y in data])
    pred = predict_logits(model, data, batch_size)
    return float((pred.reshape(len(pred), -1).argmax(1) == np.asarray(ys).reshape(-1)).mean())


def iterate(data: Batches, batch_size: int = 256) -> Iterable[tuple[Any, Any]]:
    """``(x, y)`` torch batches of ``data`` in order (for scores, calibration and statistics)."""
    return _batches(data, batch_size, None)
