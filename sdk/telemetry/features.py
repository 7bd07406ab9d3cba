"""Per-frame features, cheap enough for every frame (a few µs each).

Input features are computed on a downsampled view of the input, with vectorised numpy:

* ``image`` (H×W×3 BGR or H×W uint8; 16 rows × 64 columns sampled, green channel as a luma proxy:
  a frame fresh from the camera is not in cache, so few rows = few memory reads): ``brightness``
  (mean 0–255), ``contrast`` (standard deviation), ``sharpness`` (mean absolute difference between
  each sampled pixel and its right-hand neighbour: blur lowers it).
* ``audio`` (float samples, or samples×channels): ``rms_db`` (dBFS), ``spectral_centroid_hz``
  (Hann-windowed FFT of the first 512 samples), ``zero_crossing_rate`` (crossings per sample over the
  first 2048 samples).
* ``ecg`` (float samples×leads, lead 0 used): ``heart_rate_bpm`` (R peaks over the last 8 s kept in a
  ring buffer) and ``signal_quality`` (0–1, from the kurtosis of the signal: clean ECG is spiky, noise
  is not): clip((kurtosis - 3) / 20, 0, 1).

Output features come from the model's decoded output (:func:`parse_output`): top-class
``confidence``, the predicted class and, when the model exposes one, the ``embedding_norm``.
A feature that cannot be computed for a frame is NaN and is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from sdk.errors import TelemetryError

INPUT_FEATURES: dict[str, tuple[str, ...]] = {
    "image": ("brightness", "contrast", "sharpness"),
    "audio": ("rms_db", "spectral_centroid_hz", "zero_crossing_rate"),
    "ecg": ("heart_rate_bpm", "signal_quality"),
}
OUTPUT_FEATURES: tuple[str, ...] = ("confidence", "embedding_norm")

DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "brightness": (0.0, 255.0), "contrast": (0.0, 128.0), "sharpness": (0.0, 64.0),
    "rms_db": (-90.0, 0.0), "spectral_centroid_hz": (0.0, 8000.0), "zero_crossing_rate": (0.0, 1.0),
    "heart_rate_bpm": (20.0, 220.0), "signal_quality": (0.0, 1.0),
    "confidence": (0.0, 1.0), "embedding_norm": (0.0, 50.0),
}
DEFAULT_SAMPLE_RATE = {"audio": 16000, "ecg": 360}


def feature_names(kind: str) -> tuple[str, ...]:
    """The continuous features tracked for ``kind``: its input features, then the output features."""
    if kind not in INPUT_FEATURES:
        raise TelemetryError(f"unknown app kind {kind!r}: use one of {', '.join(INPUT_FEATURES)}")
    return INPUT_FEATURES[kind] + OUTPUT_FEATURES


class FeatureExtractor:
    """``extractor(data, meta) -> values`` for one app kind; reuses its buffers between frames.

    The returned array is owned by the extractor and overwritten by the next call.
    """

    def __init__(self, kind: str, sample_rate: int | None = None, max_side: int = 64, rows: int = 16) -> None:
        self.kind = kind
        self.names = INPUT_FEATURES.get(kind)
        if self.names is None:
            raise TelemetryError(f"unknown app kind {kind!r}: use one of {', '.join(INPUT_FEATURES)}")
        self.sample_rate = sample_rate or DEFAULT_SAMPLE_RATE.get(kind, 0)
        self.max_side = max_side
        self.rows = rows
        self._out = np.full(len(self.names), np.nan)
        self._fft_cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._ring = np.zeros(0, dtype=np.float32)
        self._ring_fill = 0
        self._compute = {"image": self._image, "audio": self._audio, "ecg": self._ecg}[kind]

    def __call__(self, data: Any, meta: Mapping[str, Any] | None = None) -> np.ndarray:
        arr = np.asarray(data)
        if arr.size == 0:
            self._out.fill(np.nan)
            return self._out
        rate = int(meta.get("sample_rate") or 0) if meta else 0
        self._compute(arr, rate or self.sample_rate)
        return self._out

    def _image(self, img: np.ndarray, _rate: int) -> None:
        h, w = img.shape[:2]
        rows = img[:: max(1, h // self.rows)]  # few rows: each row read is sequential memory
        cs = max(1, w // self.max_side)
        chan = (1,) if img.ndim == 3 else ()
        g0 = rows[(slice(None), slice(0, w - 1, cs), *chan)].astype(np.float32)
        g1 = rows[(slice(None), slice(1, w, cs), *chan)].astype(np.float32)  # right-hand neighbours
        g0 = g0.reshape(g0.shape[0], -1)
        g1 = g1.reshape(g1.shape[0], -1)
        if img.dtype != np.uint8 and g0.size and float(g0.max()) <= 1.0:
            g0 *= 255.0
            g1 *= 255.0
        flat = g0.ravel()
        n = max(flat.size, 1)
        mean = float(flat.sum()) / n
        out = self._out
        out[0] = mean
        out[1] = max(float(flat @ flat) / n - mean * mean, 0.0) ** 0.5
        out[2] = float(np.abs(g1 - g0).sum()) / n if w > 1 else 0.0

    def _audio(self, data: np.ndarray, rate: int) -> None:
        x = data[:, 0] if data.ndim == 2 else data.reshape(-1)
        if x.dtype != np.float32:
            x = x.astype(np.float32) / (32768.0 if x.dtype == np.int16 else 1.0)
        out = self._out
        out[0] = 20.0 * np.log10(float(np.sqrt(float(x @ x) / x.size)) + 1e-10)
        head = x[:2048]
        out[2] = np.count_nonzero(head[1:] * head[:-1] < 0) / max(1, head.size - 1)
        n = 512 if x.size >= 512 else 1 << max(3, int(np.log2(x.size)))
        seg = x[:n]
        if seg.size < n:
            out[1] = np.nan
            return
        window, freqs = self._fft_tables(n, rate)
        spec = np.abs(np.fft.rfft(seg * window))
        total = float(spec.sum())
        out[1] = float(spec @ freqs) / total if total > 1e-12 else np.nan

    def _fft_tables(self, n: int, rate: int) -> tuple[np.ndarray, np.ndarray]:
        key = (n, rate)
        if key not in self._fft_cache:
            self._fft_cache[key] = (np.hanning(n).astype(np.float32),
                                    np.fft.rfftfreq(n, 1.0 / max(rate, 1)).astype(np.float32))
        return self._fft_cache[key]

    def _ecg(self, data: np.ndarray, rate: int) -> None:
        x = data[:, 0] if data.ndim == 2 else data.reshape(-1)
        decim = max(1, rate // 120)  # R peaks survive at ~120 Hz
        x = x[::decim].astype(np.float32, copy=False)
        fs = rate / decim
        ring = self._push_ring(x, int(8 * fs))
        out = self._out
        if ring.size < 3 * fs:
            out.fill(np.nan)
            return
        centred = ring - float(ring.sum()) / ring.size
        sq = centred * centred
        var = float(sq.sum()) / ring.size
        if var < 1e-18:
            out[0] = np.nan
            out[1] = 0.0
            return
        kurt = float(sq @ sq) / ring.size / (var * var)
        out[1] = min(1.0, max(0.0, (kurt - 3.0) / 20.0))
        out[0] = _heart_rate(ring, fs)

    def _push_ring(self, x: np.ndarray, capacity: int) -> np.ndarray:
        if self._ring.size != capacity:
            self._ring = np.zeros(capacity, dtype=np.float32)
            self._ring_fill = 0
        ring = self._ring
        n = min(x.size, capacity)
        ring[:-n] = ring[n:]
        ring[-n:] = x[-n:]
        self._ring_fill = min(capacity, self._ring_fill + n)
        return ring[capacity - self._ring_fill:]


def _heart_rate(x: np.ndarray, fs: float) -> float:
    """Beats per minute from R peaks: local maxima of the slope energy above half its maximum,
    at least 0.25 s apart."""
    slope = np.abs(np.diff(x))
    thr = 0.5 * float(slope.max())
    mid = slope[1:-1]
    peaks = np.flatnonzero((mid > thr) & (mid >= slope[:-2]) & (mid > slope[2:])) + 1
    if peaks.size < 2:
        return np.nan
    keep = np.concatenate(([True], np.diff(peaks) > 0.25 * fs))
    peaks = peaks[keep]
    if peaks.size < 3:
        return np.nan
    rr = np.diff(peaks)
    return float(60.0 * fs * rr.size / float(rr.sum()))


def parse_output(value: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(classes, confidences, embedding)`` from a decoded model output.

    Understands a probability/score vector (1-D or 1×C), a dict with ``probs``/``scores`` or
    ``label``/``class_id`` + ``confidence``/``score`` (and optional ``embedding``), an object with
    those attributes, a mapping with a ``detections`` list, or a list of detections (dicts or objects with ``label``/``class_id`` and
    ``score``/``confidence``). Unknown shapes give empty arrays (nothing counted).
    """
    empty = np.zeros(0)
    if value is None:
        return empty.astype(np.int64), empty, None
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return _from_scores(value), _confidence_of(value), None
    if isinstance(value, (list, tuple)):
        classes, confs = [], []
        for det in value:
            c, s, _ = parse_output(det)
            classes.extend(c.tolist())
            confs.extend(s.tolist())
        return np.asarray(classes, dtype=np.int64), np.asarray(confs, dtype=np.float64), None
    get = value.get if isinstance(value, Mapping) else (lambda k, d=None: getattr(value, k, d))
    dets = get("detections")
    if isinstance(dets, (list, tuple)):  # a detector's frame result: {"detections": [...], ...}
        return parse_output(list(dets))
    emb = get("embedding")
    emb_arr = None if emb is None else np.asarray(emb, dtype=np.float32).reshape(-1)
    scores = _first(get, ("probs", "probabilities", "scores"))
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float32)
        return _from_scores(scores), _confidence_of(scores), emb_arr
    label = _first(get, ("class_id", "label", "class", "cls"))
    conf = _first(get, ("confidence", "score", "prob"))
    classes = np.asarray([label], dtype=np.int64) if isinstance(label, (int, np.integer)) else empty.astype(np.int64)
    confs = np.asarray([float(conf)], dtype=np.float64) if conf is not None else empty
    return classes, confs, emb_arr


def _first(get: Any, keys: tuple[str, ...]) -> Any:
    for k in keys:
        v = get(k)
        if v is not None:
            return v
    return None


def _from_scores(scores: np.ndarray) -> np.ndarray:
    flat = scores.reshape(-1)
    return np.asarray([int(flat.argmax())], dtype=np.int64) if flat.size else np.zeros(0, dtype=np.int64)


def _confidence_of(scores: np.ndarray) -> np.ndarray:
    flat = scores.reshape(-1)
    if not flat.size:
        return np.zeros(0)
    top = float(flat.max())
    if top > 1.0 or float(flat.min()) < 0.0:  # logits: softmax the top class only
        top = 1.0 / float(np.exp(flat - top).sum())
    return np.asarray([top])
