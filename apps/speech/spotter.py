"""``KeywordSpotter``: audio chunks in, keyword detections out.

    from apps.speech import KeywordSpotter
    kws = KeywordSpotter.from_folder()                     # the shipped model, manager picks the tier
    for chunk in chunks:                                   # int16 or float32 audio at 16 kHz, any length
        for d in kws.process(chunk):
            print(d.keyword, d.time_s, d.confidence)

In a ``Pipeline`` it is one stage: ``Stage("spot", lambda item: kws.process(item.data))``.
A model folder is what ``ember optimize`` writes plus ``speech.json`` (front end, labels, streaming
defaults; for an enrolled word also its prototype and threshold).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from apps.speech.data import KEYWORDS, LABELS, RATE
from apps.speech.stream import Detection, Smoother, StreamSettings, Windower, as_int16, loudness
from sdk.errors import ConfigError, ModelError
from sdk.features.kws import KwsFrontend

MODEL_DIR = Path(__file__).parent / "model"
SETTINGS_FILE = "speech.json"


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def load_settings(folder: Path) -> dict[str, Any]:
    path = folder / SETTINGS_FILE
    if not path.is_file():
        raise ModelError(f"{folder}: no {SETTINGS_FILE}; not a speech model folder (use the shipped one, "
                         "or one written by 'python -m apps.speech.train' or 'ember speech enroll')")
    return json.loads(path.read_text())


def input_table(meta: dict[str, Any]) -> np.ndarray:
    """float32 [256]: the model input (log2 energy) for each uint8 feature value. With the int8 model's input
    quantization in ``meta`` the values sit exactly on its grid, so every tier sees the int8 input that the
    C front end's table (``KwsFrontend.int8_lut``) gives the microcontroller: identical int8 results."""
    fe = KwsFrontend(**meta.get("frontend", {}))
    q = meta.get("input_quantization")
    if not q:
        return (np.arange(256) / fe.steps_per_octave).astype(np.float32)
    scale, zero = float(q[0]), int(q[1])
    return ((fe.int8_lut(scale, zero).astype(np.float64) - zero) * scale).astype(np.float32)


def model_input(feats: np.ndarray, table: np.ndarray) -> np.ndarray:
    """uint8 features [49, 40] -> float model input [1, 1, 49, 40]."""
    return table[np.asarray(feats, np.uint8)][None, None]


class KeywordSpotter:
    """Streaming keyword spotter over a speech model folder (see module doc)."""

    def __init__(self, folder: str | Path | None = None, *, tier: str | None = None, backend: str | None = None,
                 keywords: Sequence[str] | None = None, config: dict[str, Any] | None = None,
                 manager: Any = None, backend_options: dict[str, dict[str, Any]] | None = None,
                 **overrides: Any) -> None:
        from sdk.models.manager import ModelManager

        self.folder = Path(folder) if folder else MODEL_DIR
        self.meta = load_settings(self.folder)
        self.labels: list[str] = list(self.meta.get("labels", LABELS))
        self.enrolled = self.meta.get("kind") == "enrolled"
        fields = StreamSettings.__dataclass_fields__
        stream = {k: v for k, v in self.meta.get("stream", {}).items() if k in fields}
        self.settings = replace(StreamSettings(**stream), **{k: v for k, v in overrides.items() if v is not None})
        self.settings.check()
        self.keywords = self._keywords(keywords)
        self.frontend = KwsFrontend(**self.meta.get("frontend", {}))
        self.table = input_table(self.meta)
        if manager is None:
            backends = [backend] if backend and not tier else None  # with a tier, pin() picks the backend
            manager = ModelManager.from_config(self.folder, config, backends=backends, initial=tier,
                                               background=False, backend_options=backend_options)
            if tier:
                manager.pin(tier, backend)
        self.manager = manager
        self.smoother = Smoother(self.labels, self.keywords, self.settings)
        self.windower = self._windower()
        self.windows = self.skipped = 0
        self.last_probs: np.ndarray | None = None

    @classmethod
    def from_folder(cls, folder: str | Path | None = None, **kwargs: Any) -> KeywordSpotter:
        return cls(folder, **kwargs)

    def _keywords(self, keywords: Sequence[str] | None) -> list[str]:
        allowed = [w for w in self.labels if w not in ("unknown", "silence")]
        if not keywords:
            return allowed
        bad = [k for k in keywords if k not in allowed]
        if bad:
            raise ConfigError(f"unknown keyword(s) {bad}: this model knows {', '.join(allowed)}")
        return list(keywords)

    def _windower(self) -> Windower:
        hop = max(1, round(self.settings.hop_ms / (1000 * self.frontend.stride / self.frontend.sample_rate)))
        return Windower(self.frontend, self.frontend.frames_for(RATE), hop)

    @property
    def hop_ms(self) -> float:
        return self.settings.hop_ms

    @hop_ms.setter
    def hop_ms(self, value: float) -> None:
        """Change the window hop (the degradation ladder lengthens it); restarts the window."""
        self.settings.hop_ms = float(value)
        self.settings.check()
        self.windower = self._windower()

    @property
    def gate(self) -> float:
        return self.settings.gate

    @gate.setter
    def gate(self, value: float) -> None:
        """Energy gate (the degradation ladder raises it to skip more quiet windows)."""
        self.settings.gate = float(value)
        self.settings.check()

    def probabilities(self, feats: np.ndarray) -> np.ndarray:
        """Class probabilities [labels] for one window of uint8 features [49, 40]."""
        out = self.manager(model_input(feats, self.table))[0].reshape(-1)
        if self.enrolled:
            return enrolled_probs(out, self.meta)
        return softmax(out.astype(np.float32))

    def process(self, chunk: np.ndarray) -> list[Detection]:
        """Feed audio (16 kHz, int16 or float -1..1, mono or [n, ch]); returns the new detections."""
        found = []
        for end_s, feats in self.windower.push(as_int16(chunk)):
            self.windows += 1
            if self.settings.gate and loudness(feats) < self.settings.gate:
                self.skipped += 1
                probs = None
            else:
                probs = self.last_probs = self.probabilities(feats)
            d = self.smoother.push(probs, end_s)
            if d is not None:
                found.append(d)
        return found

    def reset(self) -> None:
        self.smoother.reset()
        self.windower = self._windower()

    def stats(self) -> dict[str, Any]:
        return {"windows": self.windows, "skipped": self.skipped, "settings": asdict(self.settings),
                "keywords": self.keywords, "model": self.manager.stats()}

    def close(self) -> None:
        self.manager.close()


def enrolled_probs(embedding: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """[p(word), p(other)]: a logistic on the cosine similarity of the centred embedding to the prototype."""
    c = embedding.astype(np.float32) - np.asarray(meta["mean"], np.float32)
    sim = float(c @ np.asarray(meta["prototype"], np.float32) / (np.linalg.norm(c) + 1e-9))
    p = 1.0 / (1.0 + np.exp(-meta["slope"] * (sim - meta["centre"])))
    return np.array([p, 1.0 - p], np.float32)


__all__ = ["KEYWORDS", "Detection", "KeywordSpotter", "StreamSettings"]
