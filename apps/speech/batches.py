"""What a training batch is made of: the model input, sampling weights (classes balanced, synthetic
clips at a fixed share), augmentation on the features (SpecAugment, time shift) and the distillation
targets (a teacher's logits on every cached window) with the loss that uses them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from apps.speech.data import LABELS

FRAMES, CHANNELS, STEPS_PER_OCTAVE = 49, 40, 5.25


def to_input(feats: np.ndarray) -> np.ndarray:
    """uint8 features [..., 49, 40] -> the model's float input [n, 1, 49, 40] (log2 energy)."""
    return (np.asarray(feats, np.float32) / STEPS_PER_OCTAVE).reshape(-1, 1, FRAMES, CHANNELS)


def spec_augment(x: Any, rng: np.random.Generator) -> Any:
    """Fill one random time band (<= 8 frames) and one frequency band (<= 6 channels) per sample with the
    sample's mean, in place."""
    for i in range(x.shape[0]):
        t, f = rng.integers(0, 9), rng.integers(0, 7)
        t0, f0 = rng.integers(0, FRAMES - t + 1), rng.integers(0, CHANNELS - f + 1)
        fill = x[i].mean()
        x[i, :, t0:t0 + t, :] = fill
        x[i, :, :, f0:f0 + f] = fill
    return x


def roll_time(x: Any, rng: np.random.Generator, max_roll: int) -> Any:
    """Shift each sample by up to ``max_roll`` frames (wrapping): words anywhere in the window, as in a stream."""
    if max_roll:
        for i, r in enumerate(rng.integers(-max_roll, max_roll + 1, x.shape[0])):
            x[i] = np.roll(x[i], int(r), axis=1)
    return x


def teacher_logits(teacher: Path, tx: np.ndarray, cache: Path) -> np.ndarray:
    """The logits [n, copies, 12] of an fp32 ONNX model of this app (e.g. the shipped model.fp32.onnx) on
    every cached training window, computed once (no SpecAugment) and cached in ``cache``."""
    import torch
    from tqdm import tqdm

    from sdk.compress.distill import OnnxTeacher

    if cache.exists():
        return np.load(cache)
    net = OnnxTeacher(teacher)
    flat = tx.reshape(-1, FRAMES, CHANNELS)
    out = np.concatenate([net(torch.from_numpy(to_input(flat[i:i + 512]))).numpy()
                          for i in tqdm(range(0, len(flat), 512), desc="teacher", unit="batch", mininterval=10)])
    out = out.reshape(*tx.shape[:2], len(LABELS)).astype(np.float32)
    np.save(cache, out)
    return out


def distil(out: Any, y: Any, soft: Any, recorded: Any, args: argparse.Namespace) -> Any:
    """Distillation (``sdk.compress.distill.kd_loss``) on the recorded clips of a batch, against the teacher's
    logits on the same window without SpecAugment; synthetic clips (the teacher is poor on them: 20 % of the
    synthetic unknown words right) by their label only. Weighted by the number of each in the batch."""
    import torch.nn.functional as F

    from sdk.compress.distill import kd_loss

    parts = []
    if recorded.any():
        parts.append(kd_loss(out[recorded], soft[recorded], y[recorded], args.kd_temp, args.kd) * recorded.sum())
    if (~recorded).any():
        parts.append(F.cross_entropy(out[~recorded], y[~recorded], label_smoothing=0.05) * (~recorded).sum())
    return sum(parts) / len(y)


def sampling_weights(ty: np.ndarray, real: int, unknown_weight: float, synth_share: float) -> np.ndarray:
    """Probability of drawing each training sample: classes balanced (unknown ``unknown_weight`` times a
    keyword class). ``synth_share`` > 0: within a class that has synthetic samples (those from index
    ``real`` on), they get that share of the class's draws, the recorded clips the rest; 0: every
    sample of a class alike."""
    counts = np.bincount(ty, minlength=len(LABELS)).astype(np.float64)
    w = 1.0 / counts[ty]
    if synth_share:
        is_syn = np.arange(len(ty)) >= real
        n_syn = np.bincount(ty[is_syn], minlength=len(LABELS)).astype(np.float64)
        n_real = counts - n_syn
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(is_syn, synth_share / n_syn[ty], np.where(n_syn[ty] > 0, 1 - synth_share, 1.0) / n_real[ty])
        w = share
    w = w * np.where(ty == LABELS.index("unknown"), unknown_weight, 1.0)  # streams are mostly other words
    return w / w.sum()
