"""``BeatClassifier``: N / S / V / F from a beat window and its RR features, on any tier/backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from apps.health.features import CHANNELS, LEN, BeatInput

MODEL_DIR = Path(__file__).resolve().parent / "model"
LABELS = ("N", "S", "V", "F")


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


class BeatClassifier:
    """Classify beats with a model folder (default: the shipped one) through the SDK's model manager.

    ``tier``/``backend`` pin a variant (e.g. ``"int8"``, ``"litert"``); by default the manager picks.
    """

    def __init__(self, model: str | Path | None = None, tier: str | None = None, backend: str | None = None,
                 config: dict[str, Any] | None = None, **manager_options: Any) -> None:
        from sdk.models.manager import ModelManager

        folder = Path(model) if model else MODEL_DIR
        opts: dict[str, Any] = {"measure": "never", "background": False, **manager_options}
        if tier:
            opts["initial"] = tier
        self.manager = ModelManager.from_config(folder, config, **opts)
        if tier or backend:
            self.manager.pin(tier or self.manager.tier, backend)
            self.manager(np.zeros((1, CHANNELS, LEN), np.float32))   # the switch happens at a frame

    @property
    def variant(self) -> str:
        tier, backend = self.manager.current
        return f"{tier}/{backend}"

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities [n, 4] for model inputs [n, 2, LEN] (run one at a time: batch 1)."""
        out = [np.asarray(self.manager(x[i:i + 1])[0], np.float32).reshape(-1) for i in range(len(x))]
        return softmax(np.stack(out)) if out else np.zeros((0, len(LABELS)), np.float32)

    def classify(self, beats: list[BeatInput]) -> list[tuple[str, float]]:
        """(class, probability) of each beat."""
        if not beats:
            return []
        p = self.probabilities(np.stack([b.tensor() for b in beats]))
        return [(LABELS[int(k)], float(p[i, k])) for i, k in enumerate(p.argmax(1))]

    def close(self) -> None:
        self.manager.close()
