"""The tier-switching model manager: ``manager(x) -> outputs``, usable as a pipeline's infer stage.

    manager = ModelManager("models/vision", budget_ms=33, rules=["battery < 30 and not charging -> max_tier int8"])
    pipe = Pipeline(source, stages=[Stage("preprocess", prep), Stage("infer", manager), Stage("postprocess", post)])

Each call: (1) if a background load finished, swap to it (an atomic reference swap between two
frames); (2) every ``decide_every_s`` ask the ``TierPolicy`` (device state, rolling p95 of the
current variant, rules) and start loading its choice in the background; (3) run the frame. A
variant that fails to load or raises is quarantined (``tier.quarantine``) and the same frame is
run on the next usable variant. Every switch is a ``tier.switch`` event with reason, from/to,
``load_ms`` (background load + warm-up) and ``switch_ms`` (the first frame on the new variant,
swap included). The previous variant is closed once the new one has served a frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sdk.config import check_section
from sdk.device import Device, DeviceState
from sdk.errors import BackendError, ModelError
from sdk.events import EventBus, default_bus
from sdk.models.policy import Decision, Key, Profile, TierPolicy, default_rules, tier_quality
from sdk.models.rules import Rule
from sdk.models.store import LoadedVariant, ModelStore
from sdk.models.swap import BackgroundLoader
from sdk.pipeline.stats import TimedWindow
from sdk.vocab import check_backend, check_tier

log = logging.getLogger(__name__)


def _label(key: Key | None) -> str | None:
    return f"{key[0]}/{key[1]}" if key else None


class ModelManager:
    """Serve a model folder's best variant for the device, switching tiers without losing frames.

    ``measure``: ``"missing"`` times variants with no metrics for this device class at start-up,
    ``"all"`` re-times every one, ``"never"`` trusts the manifest. ``device`` is a ``Device`` (or
    ``ScriptedDevice``); ``None`` uses the real readers. ``backend_options`` maps a backend name
    to its options, e.g. ``{"onnxruntime": {"threads": 2}}``.
    """

    def __init__(self, model: str | Path | ModelStore, *, budget_ms: float | None = None,
                 rules: Iterable[str | Mapping[str, Any] | Rule] = (), use_default_rules: bool = True,
                 device: Device | None = None, bus: EventBus | None = None,
                 clock: Callable[[], float] = time.monotonic, min_dwell_s: float = 5.0,
                 down_after_s: float = 3.0, up_after_s: float = 30.0, window_s: float = 3.0,
                 decide_every_s: float = 0.25, backends: list[str] | None = None,
                 backend_options: Mapping[str, Mapping[str, Any]] | None = None, measure: str = "missing",
                 initial: str | None = None, background: bool = True) -> None:
        self.store = model if isinstance(model, ModelStore) else ModelStore(model, backends=backends)
        self.bus = bus or default_bus
        self.clock = clock
        self.device = device if device is not None else Device()
        self.backend_options = {k: dict(v) for k, v in (backend_options or {}).items()}
        self.window_s = window_s
        self.decide_every_s = decide_every_s
        self.background = background
        all_rules = list(rules) + (default_rules(down_after_s, up_after_s) if use_default_rules else [])
        self.policy = TierPolicy(self._profiles(measure), all_rules, budget_ms=budget_ms,
                                 min_dwell_s=min_dwell_s, clock=clock)
        self._lock = threading.RLock()
        self._latencies = TimedWindow(512)
        self._loader = BackgroundLoader(self._load_key, self.store.name)
        self._retiring: LoadedVariant | None = None
        self._just_swapped: tuple[LoadedVariant | None, str, float] | None = None
        self._pinned: Key | None = None
        self._last_decide = -float("inf")
        self.state: DeviceState | None = None
        self.switches = 0
        self.frames = 0
        self._active = self._initial_load(initial)
        self.exits = self._load_exits()

    @classmethod
    def from_config(cls, model: str | Path | ModelStore, config: Mapping[str, Any] | None = None,
                    **kwargs: Any) -> ModelManager:
        """A manager set from the ``[models]`` section: ``budget_ms``, ``rules`` (a list of rule
        strings), ``threads`` (per backend), ``min_dwell_s``; ``kwargs`` override them. A ``model``
        given by name (``"kws"``, not an existing path) is the folder ``<models.dir>/kws``."""
        section = check_section("models", dict((config or {}).get("models", {})), "models settings")
        if isinstance(model, str) and not Path(model).exists() and section.get("dir") and "/" not in model:
            model = Path(section["dir"]) / model
        for key in ("budget_ms", "rules", "min_dwell_s"):
            if section.get(key) is not None:
                kwargs.setdefault(key, section[key])
        threads = section.get("threads")
        if threads:
            kwargs.setdefault("backend_options", {b: {"threads": int(threads)} for b in ("onnxruntime", "litert")})
        return cls(model, **kwargs)

    # ---- set-up ----------------------------------------------------------------------------------
    def _profiles(self, measure: str) -> list[Profile]:
        for v in self.store.manifest.variants:
            if not v.usable:
                self._quarantine_event(v.key, v.problem or "unusable")
        profiles = []
        for v in self.store.usable():
            p = self.store.profile(v)
            if measure == "all" or (measure == "missing" and p.p95 is None):
                try:
                    p = self.store.measure(v, **self.backend_options.get(v.backend, {}))
                except ModelError as e:
                    self._quarantine_event(v.key, str(e))
                    continue
            profiles.append(p)
        if not profiles:
            raise ModelError(self._none_left_message())
        return profiles

    def _initial_load(self, initial: str | None) -> LoadedVariant:
        key = self._find(initial) if initial else self.policy.initial()
        while key is not None:
            try:
                loaded = self._load_key(key)
                self.policy.switched()
                self.bus.publish("tier.switch", **{"model": self.store.name, "reason": "initial", "from": None,
                                 "to": _label(key), "from_tier": None, "to_tier": key[0],
                                 "load_ms": round(loaded.load_ms, 3), "switch_ms": 0.0})
                return loaded
            except ModelError as e:
                self._quarantine(key, str(e))
                key = self.policy.initial()
        raise ModelError(self._none_left_message())

    def _load_exits(self) -> Any:
        """The manifest's cascade / early-exit chain (``sdk.compress.cascade``), or None. A broken one
        is logged and left out: the folder's variants still serve every frame."""
        if not self.store.manifest.extra.get("exits"):
            return None
        from sdk.compress.cascade import load_chain

        try:
            return load_chain(self.store.manifest, int(self.backend_options.get("onnxruntime", {}).get("threads", 1)))
        except (ModelError, OSError) as e:
            log.warning("model %s: its exits/cascade are not used: %s", self.store.name, e)
            return None

    def _load_key(self, key: Key) -> LoadedVariant:
        v = self.store.manifest.variant(*key)
        return self.store.load(v, **self.backend_options.get(v.backend, {}))

    def _find(self, tier: str, backend: str | None = None) -> Key:
        for k in self.policy.profiles:
            if k[0] == tier and (backend is None or k[1] == backend) and k not in self.policy.quarantined:
                return k
        raise ModelError(f"model {self.store.name}: no usable variant {tier}/{backend or '*'} "
                         f"(usable: {[_label(k) for k in self.policy.profiles if k not in self.policy.quarantined]})")

    # ---- public ----------------------------------------------------------------------------------
    @property
    def current(self) -> Key:
        """(tier, backend) of the variant serving frames now."""
        return self._active.key

    @property
    def tier(self) -> str:
        return self._active.key[0]

    def pin(self, tier: str, backend: str | None = None) -> None:
        """Serve ``tier`` until ``unpin()`` (the policy is suspended); switches at a frame boundary.
        A name outside ``sdk.vocab`` is a ``ModelError``/``BackendError`` saying so."""
        check_tier(tier)
        if backend is not None:
            check_backend(backend)
        with self._lock:
            self._pinned = self._find(tier, backend)
            self._last_decide = -float("inf")

    def unpin(self) -> None:
        with self._lock:
            self._pinned = None

    def limit(self, max_tier: str | None) -> None:
        """Cap the quality at ``max_tier`` (None lifts the cap); used by the degradation ladder."""
        with self._lock:
            self.policy.limit_quality = tier_quality(max_tier) if max_tier else None
            self._last_decide = -float("inf")

    def degrader(self, fn: Callable[[Any], Any] | None = None, steps: Sequence[Any] = (), **kwargs: Any) -> Any:
        """The degradation ladder of an app serving this model (``sdk.degrade``): first this model's
        fastest measured tier (``TierStep``), then the app's ``steps``. ``fn`` (default: the manager
        itself) is the work each call does; ``kwargs`` go to ``Degrader`` (``budget_ms`` defaults to
        the manager's; device, clock and event bus are the manager's). A folder with a cascade or
        early exits gets ``ExitStep`` (its low-battery threshold) after the tier step."""
        from sdk.degrade import Degrader, ExitStep, TierStep

        kwargs.setdefault("budget_ms", self.policy.budget_ms)
        if kwargs["budget_ms"] is None:
            raise ModelError(f"model {self.store.name}: a degradation ladder needs a latency budget "
                             "(ModelManager(..., budget_ms=...) or degrader(..., budget_ms=...))")
        for key, value in (("device", self.device), ("clock", self.clock), ("bus", self.bus),
                           ("name", self.store.name)):
            kwargs.setdefault(key, value)
        own = [TierStep(self)] + ([ExitStep(self.exits)] if self.exits is not None else [])
        return Degrader(self if fn is None else fn, [*own, *steps], **kwargs)

    def fastest_tier(self) -> str:
        return self.policy.ladder()[-1].key[0]

    def p95(self) -> float | None:
        return self._percentile(95)

    def __call__(self, x: Any) -> list[np.ndarray]:
        """Run one frame; returns the model outputs (a list, in the manifest's output order)."""
        with self._lock:
            t0 = time.perf_counter()
            self._check_input(x)
            self._maybe_swap()
            self._maybe_decide()
            out = self.exits(x, self._run) if self.exits is not None else self._run(x)
            self.frames += 1
            if self._just_swapped is not None:
                self._finish_switch((time.perf_counter() - t0) * 1e3)
            return out

    def stats(self) -> dict[str, Any]:
        return {"model": self.store.name, "current": _label(self.current), "pinned": _label(self._pinned),
                "exit_rate": None if self.exits is None else round(self.exits.exit_rate, 4),
                "frames": self.frames, "switches": self.switches, "p95_ms": self.p95(),
                "quarantined": [_label(k) for k in sorted(self.policy.quarantined)],
                "ladder": [p.label for p in self.policy.ladder()]}

    def close(self) -> None:
        with self._lock:
            self._loader.discard()
            for lv in (self._retiring, self._active):
                if lv is not None:
                    lv.close()
            self._retiring = None
            if self.exits is not None:
                self.exits.close()

    def __enter__(self) -> ModelManager:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- per frame -------------------------------------------------------------------------------
    def _check_input(self, x: Any) -> None:
        shape = self.store.manifest.input.get("shape")
        if isinstance(x, np.ndarray) and shape and (len(shape) != x.ndim or any(
                isinstance(d, int) and d > 0 and d != s for d, s in zip(shape, x.shape, strict=False))):
            raise ModelError(f"model {self.store.name}: input shape {list(x.shape)} does not match the manifest's "
                             f"{shape} (preprocess to the model's input first)")

    def _maybe_swap(self) -> None:
        result = self._loader.take()
        if result is None:
            return
        if result.error is not None:
            self._quarantine(result.key, str(result.error))
            return
        old = self._active
        self._active = result.loaded
        self._retiring = old
        self._latencies.clear()
        self._just_swapped = (old, result.reason, result.loaded.load_ms)

    def _maybe_decide(self) -> None:
        now = self.clock()
        if now - self._last_decide < self.decide_every_s or self._loader.busy:
            return
        self._last_decide = now
        if self._pinned is not None:
            decision = Decision(self._pinned, "pinned") if self._pinned != self.current else None
        else:
            self.state = self.device.snapshot()
            decision = self.policy.decide(self.current, self.state, self._percentile(50), self._percentile(95), now)
        if decision is not None and decision.target != self.current:
            self._loader.request(decision.target, decision.reason, background=self.background)
            if not self.background:
                self._maybe_swap()

    def _run(self, x: Any) -> list[np.ndarray]:
        while True:
            active = self._active
            t0 = time.perf_counter()
            try:
                out = active.run(x)
            except BackendError as e:
                self._fail_over(active, str(e))
                continue
            self._latencies.add(self.clock(), (time.perf_counter() - t0) * 1e3)
            return out

    def _fail_over(self, failed: LoadedVariant, problem: str) -> None:
        """Quarantine ``failed`` and make the next usable variant active, for the same frame."""
        self._quarantine(failed.key, problem)
        retiring, self._retiring = self._retiring, None
        failed.close()
        if retiring is not None and retiring.key not in self.policy.quarantined:
            new = retiring
        else:
            if retiring is not None:
                retiring.close()
            new = self._load_fallback(failed.key)
        self._active = new
        self._latencies.clear()
        self._just_swapped = (failed, f"fallback: {failed.key[0]}/{failed.key[1]} failed", new.load_ms)

    def _load_fallback(self, failed: Key) -> LoadedVariant:
        while (key := self.policy.fallback(failed)) is not None:
            try:
                return self._load_key(key)
            except ModelError as e:
                self._quarantine(key, str(e))
        raise ModelError(self._none_left_message())

    def _finish_switch(self, switch_ms: float) -> None:
        old, reason, load_ms = self._just_swapped  # type: ignore[misc]
        self._just_swapped = None
        if self._retiring is not None:
            self._retiring.close()
            self._retiring = None
        self.switches += 1
        self.policy.switched()
        self.bus.publish("tier.switch", **{"model": self.store.name, "reason": reason,
                         "from": _label(old.key) if old else None, "to": _label(self.current),
                         "from_tier": old.key[0] if old else None, "to_tier": self.current[0],
                         "load_ms": round(load_ms, 3), "switch_ms": round(switch_ms, 3)})

    def _percentile(self, q: float) -> float | None:
        return self._latencies.percentile(q, since=self.clock() - self.window_s)

    # ---- failures --------------------------------------------------------------------------------
    def _quarantine(self, key: Key, problem: str) -> None:
        self.policy.quarantined.add(key)
        if self._pinned == key:
            self._pinned = None
        try:
            self.store.manifest.variant(*key).mark_unusable(problem)
        except ModelError:
            pass
        self._quarantine_event(key, problem)

    def _quarantine_event(self, key: Key, problem: str) -> None:
        log.warning("model %s: quarantined %s: %s", self.store.name, _label(key), problem)
        self.bus.publish("tier.quarantine", model=self.store.name, variant=_label(key), tier=key[0],
                         backend=key[1], problem=problem)

    def _none_left_message(self) -> str:
        problems = "; ".join(f"{v.tier}/{v.backend}: {v.problem}" for v in self.store.manifest.variants
                             if not v.usable) or "no variants listed"
        return f"model {self.store.name} ({self.store.folder}): no usable variant left ({problems})"
