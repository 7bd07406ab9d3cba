"""Evaluation on any labelled folder: clip accuracy (per class, confusion) and streaming misses / false accepts.

Streams are built from the folder itself: keyword clips over a background of its ``_silence_`` clips
(a keyword stream), and its ``_unknown_`` + ``_silence_`` clips repeated with new order, gain and gaps
until ``hours`` of audio (a negative stream). Posteriors are computed once per window, so several
streaming settings can be scored on the same stream (``decide``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from apps.speech.data import CLIP, RATE, Clip, fit, read_audio
from apps.speech.stream import Detection, StreamSettings, loudness


def clip_predictions(spotter: Any, clips: Sequence[Clip], desc: str = "clips") -> np.ndarray:
    """Class probabilities [n, labels] of each clip (1 s, centre-cropped/padded)."""
    from tqdm import tqdm

    out = [spotter.probabilities(spotter.frontend(fit(read_audio(c.path)))) for c in
           tqdm(clips, desc=desc, unit="clip", mininterval=5, leave=False)]
    return np.stack(out)


def accuracy_report(probs: np.ndarray, truth: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Top-1 overall and per class, and the confusion matrix (rows: truth, columns: prediction)."""
    idx = {k: i for i, k in enumerate(labels)}
    y = np.array([idx[t] for t in truth])
    pred = probs.argmax(1)
    conf = np.zeros((len(labels), len(labels)), np.int64)
    np.add.at(conf, (y, pred), 1)
    per = {k: float(conf[i, i] / conf[i].sum()) for i, k in enumerate(labels) if conf[i].sum()}
    return {"accuracy": float((pred == y).mean()), "clips": len(y), "per_class": per,
            "labels": list(labels), "confusion": conf.tolist()}


@dataclass
class Stream:
    audio: np.ndarray  # int16
    events: list[tuple[str, float, float]]  # (keyword, start s, end s)

    @property
    def hours(self) -> float:
        return len(self.audio) / RATE / 3600


def _background(fillers: Sequence[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n, np.float32)
    if not fillers:
        return out
    pos = 0
    while pos < n:
        f = fillers[rng.integers(len(fillers))].astype(np.float32) * 10 ** (rng.uniform(-20, 0) / 20)
        m = min(len(f), n - pos)
        out[pos:pos + m] = f[:m]
        pos += m
    return out


def build_stream(clips: Sequence[np.ndarray], names: Sequence[str], fillers: Sequence[np.ndarray],
                 rng: np.random.Generator, min_s: float = 0.0, gap_s: tuple[float, float] = (1.0, 2.5)) -> Stream:
    """Clips (in shuffled order, random gain, repeated until ``min_s`` seconds) separated by random gaps,
    over a background of ``fillers`` at random levels."""
    if not len(clips):
        return Stream(np.zeros(0, np.int16), [])
    place, pos = [], int(rng.uniform(*gap_s) * RATE)
    while True:
        for i in rng.permutation(len(clips)):
            place.append((i, pos, 10 ** (rng.uniform(-6, 3) / 20)))
            pos += len(clips[i]) + int(rng.uniform(*gap_s) * RATE)
        if pos >= min_s * RATE:
            break
    audio = _background(fillers, pos, rng)
    events = []
    for i, start, gain in place:
        audio[start:start + len(clips[i])] += clips[i].astype(np.float32) * gain
        events.append((names[i], start / RATE, (start + len(clips[i])) / RATE))
    return Stream(np.clip(np.round(audio), -32768, 32767).astype(np.int16), events)


def window_posteriors(spotter: Any, audio: np.ndarray, chunk: int = 16000) -> tuple[np.ndarray, list, np.ndarray]:
    """(end times, probabilities or None for silence below the gate, loudness) of every window of a stream."""
    from tqdm import tqdm

    spotter.reset()
    times, probs, loud = [], [], []
    for s in tqdm(range(0, len(audio), chunk), desc="stream", unit="s", mininterval=10, leave=False):
        for end, feats in spotter.windower.push(audio[s:s + chunk]):
            times.append(end)
            loud.append(loudness(feats))
            probs.append(spotter.probabilities(feats))
    return np.array(times), probs, np.array(loud)


def decide(times: np.ndarray, probs: list, loud: np.ndarray, labels: Sequence[str], keywords: Sequence[str],
           settings: StreamSettings) -> list[Detection]:
    """The detections ``Smoother`` would make on these windows (vectorised: many settings are scored)."""
    n = len(times)
    if n == 0:
        return []
    p = np.stack([np.zeros(len(labels), np.float32) if q is None else q for q in probs]).astype(np.float64)
    if settings.gate:
        p[np.asarray(loud) < settings.gate] = 0.0
    keys = [list(labels).index(k) for k in keywords]
    c = np.vstack([np.zeros((1, len(keys))), np.cumsum(p[:, keys], axis=0)])
    k = settings.smooth
    smooth = (c[1:] - c[np.maximum(np.arange(1, n + 1) - k, 0)]) / k  # missing windows at the start count as 0
    best, conf = smooth.argmax(1), smooth.max(1)
    out, last = [], -np.inf
    for i in np.flatnonzero(conf >= settings.threshold):
        if times[i] - last >= settings.refractory_s:
            last = float(times[i])
            out.append(Detection(keywords[best[i]], round(last, 3), float(conf[i])))
    return out


def score_keywords(stream: Stream, found: list[Detection], tail_s: float = 1.0) -> dict[str, Any]:
    """Miss rate (no detection of the right word from its start to ``tail_s`` after its end) and wrong detections."""
    used, hits = set(), 0
    for word, start, end in stream.events:
        match = [j for j, d in enumerate(found) if j not in used and d.keyword == word and start < d.time_s <= end + tail_s]
        if match:
            used.add(match[0])
            hits += 1
    n = len(stream.events)
    return {"keywords": n, "missed": n - hits, "miss_rate": (n - hits) / n if n else None,
            "wrong_detections": len(found) - len(used)}


def score_negatives(stream: Stream, found: list[Detection]) -> dict[str, Any]:
    return {"hours": stream.hours, "false_accepts": len(found),
            "false_accepts_per_hour": len(found) / stream.hours if stream.hours else None}


def streams_from(clips: Sequence[Clip], keywords: Sequence[str], hours: float, seed: int,
                 noise: Sequence[np.ndarray] = ()) -> tuple[Stream, Stream]:
    """(keyword stream, negative stream of >= ``hours``) from labelled clips (+ extra background ``noise``)."""
    rng = np.random.default_rng(seed)
    audio = {c.path: read_audio(c.path) for c in clips if c.label in (*keywords, "unknown", "silence")}
    sil = [audio[c.path] for c in clips if c.label == "silence"] + list(noise)
    kw = [c for c in clips if c.label in keywords]
    neg = [c for c in clips if c.label in ("unknown", "silence")]
    k_stream = build_stream([fit(audio[c.path], CLIP) for c in kw], [c.label for c in kw], sil, rng)
    n_stream = build_stream([audio[c.path] for c in neg], ["-"] * len(neg), sil, rng, min_s=hours * 3600)
    return k_stream, n_stream
