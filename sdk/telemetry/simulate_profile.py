"""A small reference profile of synthetic 24×32 frames (mean 128, sd 25) with 3-class outputs, used by
``ember fleet simulate`` and the tests."""

from __future__ import annotations

import numpy as np

from sdk.telemetry.profile import ReferenceProfile, build_reference_profile

LABELS = ["a", "b", "c"]


def synthetic_frame(rng: np.random.Generator, shift: float = 0.0) -> np.ndarray:
    return rng.normal(128 - shift, 25, (24, 32, 3)).clip(0, 255).astype(np.uint8)


def tiny_profile(seed: int = 0, n: int = 400) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    frames = [synthetic_frame(rng) for _ in range(n)]
    outputs = [rng.dirichlet((4.0, 2.0, 1.0)) for _ in range(n)]
    return build_reference_profile(frames, "image", outputs=outputs, labels=LABELS)
