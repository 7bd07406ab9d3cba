"""``ModelStore``: a model folder with its manifest, verified variants, loading and measuring.

    store = ModelStore("models/kws")          # validates manifest.json, checks files and sha256
    store.usable()                             # [Variant(fp32/onnxruntime), Variant(int8/onnxruntime)]
    loaded = store.load(store.usable()[0])     # a warmed-up LoadedVariant
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from sdk.device import device_class as detect_device_class
from sdk.errors import BackendError, ModelError
from sdk.models.manifest import Manifest, Variant
from sdk.models.policy import Profile, tier_quality
from sdk.runtime.backends import available_backends, load_backend
from sdk.runtime.backends.base import BaseBackend
from sdk.util.timing import time_calls

log = logging.getLogger(__name__)
MAX_INPUT_VALUES = 1 << 26  # an example input larger than this (256 MiB of float32) is a broken manifest


class LoadedVariant:
    """A variant loaded on its backend, adapting the manifest's input layout to the file's."""

    def __init__(self, variant: Variant, backend: BaseBackend, input_shape: list[Any] | None,
                 layout: str | None, load_ms: float) -> None:
        self.variant = variant
        self.backend = backend
        self.load_ms = load_ms
        self.served = 0
        self.transpose = _layout_transpose(input_shape, layout, backend.inputs[0].shape if backend.inputs else ())

    @property
    def key(self) -> tuple[str, str]:
        return self.variant.key

    def run(self, x: Any) -> list[np.ndarray]:
        if self.transpose is not None and isinstance(x, np.ndarray):
            x = np.ascontiguousarray(x.transpose(self.transpose))
        out = self.backend.run(x)
        self.served += 1
        return out

    def close(self) -> None:
        self.backend.close()


def _layout_transpose(shape: list[Any] | None, layout: str | None, file_shape: tuple[Any, ...]) -> tuple | None:
    """Channels-first manifest input and a channels-last file (e.g. a .tflite) → the transpose to apply
    (NCHW → NHWC, NCW → NWC; and back for channels-last manifests)."""
    if not shape or len(file_shape) != len(shape) or list(file_shape) == list(shape):
        return None
    if len(shape) == 4:
        if layout in (None, "NCHW") and list(file_shape) == [shape[0], shape[2], shape[3], shape[1]]:
            return (0, 2, 3, 1)
        if layout == "NHWC" and list(file_shape) == [shape[0], shape[3], shape[1], shape[2]]:
            return (0, 3, 1, 2)
    if len(shape) == 3 and layout in (None, "NCW", "NWC") and list(file_shape) == [shape[0], shape[2], shape[1]]:
        return (0, 2, 1)
    return None


def measure_latency(loaded: LoadedVariant, x: np.ndarray, runs: int = 20) -> tuple[float, float]:
    """p50 and p95 in ms over ``runs`` calls (after the warm-up done by ``load``)."""
    t = time_calls(lambda: loaded.run(x), runs=runs, warmup=0)
    return t.p50_ms, t.p95_ms


class ModelStore:
    """Load ``folder/manifest.json``, validate it, verify each variant's file, and mark variants
    whose backend is not available here as unusable. Nothing here raises for one bad variant."""

    def __init__(self, folder: str | Path, *, device_class: str | None = None,
                 backends: list[str] | None = None, verify: bool = True) -> None:
        self.folder = Path(folder)
        self.manifest = Manifest.load(self.folder)
        self.manifest.validate()
        self.device_class = device_class or detect_device_class()
        have = set(available_backends())
        wanted = set(backends) if backends is not None else None
        for v in self.manifest.variants:
            if not v.usable:
                continue
            if wanted is not None and v.backend not in wanted:
                v.mark_unusable(f"backend {v.backend} not selected (selected: {sorted(wanted)})")
            elif v.backend not in have:
                v.mark_unusable(f"backend {v.backend} is not available on this machine")
        if verify:
            self.manifest.verify_files()
        for v in self.manifest.variants:
            if not v.usable:
                log.warning("model %s: variant %s/%s unusable: %s", self.name, v.tier, v.backend, v.problem)

    @property
    def name(self) -> str:
        return self.manifest.name

    def usable(self) -> list[Variant]:
        return self.manifest.usable_variants()

    def profile(self, v: Variant) -> Profile:
        """The variant's profile from the manifest metrics for this device class (latency may be None)."""
        all_acc = [x.metrics_for(self.device_class) or {} for x in self.usable()]
        use_acc = bool(all_acc) and all("accuracy" in m for m in all_acc)
        m = v.metrics_for(self.device_class) or {}
        quality = float(m["accuracy"]) * 1000.0 if use_acc else tier_quality(v.tier)
        p95 = m.get("latency_ms_p95", m.get("latency_ms_p50"))
        return Profile(v.key, quality, m.get("latency_ms_p50"), p95, "manifest" if p95 is not None else "unknown")

    def example_input(self, seed: int = 0) -> np.ndarray:
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in self.manifest.input.get("shape", [1])]
        if float(np.prod(shape, dtype=np.float64)) > MAX_INPUT_VALUES:
            raise ModelError(f"model {self.name}: input shape {shape} in the manifest has more than "
                             f"{MAX_INPUT_VALUES} values; fix input.shape in manifest.json")
        return np.random.default_rng(seed).random(shape, dtype=np.float32)

    def load(self, v: Variant, warmup: int = 2, **options: Any) -> LoadedVariant:
        """Load and warm up ``v``; a failure marks it unusable and raises ``ModelError``."""
        if not v.usable:
            raise ModelError(f"model {self.name}: variant {v.tier}/{v.backend} is unusable: {v.problem}")
        path = v.safe_path()  # re-checked now: nothing opens a file outside the model folder
        t0 = time.perf_counter()
        backend = None
        try:
            backend = load_backend(path, v.backend, **options)
            loaded = LoadedVariant(v, backend, self.manifest.input.get("shape"),
                                   self.manifest.input.get("layout"), 0.0)
            for _ in range(max(1, warmup)):
                loaded.run(self.example_input())
        except Exception as e:  # anything from a runtime is reported with the file
            if backend is not None:  # loaded but failed to warm up: free the session
                backend.close()
            if isinstance(e, BackendError):
                v.mark_unusable(str(e))
                raise
            v.mark_unusable(f"{v.path}: {type(e).__name__}: {e}")
            raise ModelError(f"model {self.name}: variant {v.tier}/{v.backend} ({v.path}) failed: {e}") from None
        loaded.served = 0
        loaded.load_ms = (time.perf_counter() - t0) * 1e3
        return loaded

    def measure(self, v: Variant, runs: int = 20, save: bool = False, **options: Any) -> Profile:
        """Load ``v``, time it, and (with ``save``) write the metrics into the manifest."""
        loaded = self.load(v, **options)
        try:
            p50, p95 = measure_latency(loaded, self.example_input(), runs)
        finally:
            loaded.close()
        threads = int(options.get("threads", 1))
        metrics = {"latency_ms_p50": round(p50, 4), "latency_ms_p95": round(p95, 4), "threads": threads,
                   "measured_at": time.strftime("%Y-%m-%d")}
        self.manifest.set_metrics(v.tier, v.backend, self.device_class, metrics)
        if save:
            self.manifest.save(self.folder)
        prof = self.profile(v)
        prof.source = "measured"
        return prof
