"""Which variant to run: a ladder ordered by quality and pruned by MEASURED latency, rules, hysteresis.

Quality: the variants' ``accuracy`` metric when every variant has one, else the precision
(fp32 > fp16 > int8-mixed > int8 > int8-dynamic; ``prunedNN-`` lowers it). A lower-quality
variant stays on the ladder only if it was measured faster than every better one, so a tier
called int8 is never assumed faster (it is not, for tiny models on x86). Switching waits
``min_dwell_s`` after the previous switch; step-down and step-up conditions are separated
(``p95 > budget`` vs. the next better variant expected under ``headroom_ratio × budget``),
which together keep the choice from flapping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sdk.device import DeviceState
from sdk.models.rules import Rule, rules_from_config
from sdk.vocab import parse_tier

Key = tuple[str, str]


def tier_quality(tier: str) -> float:
    """Nominal quality of a tier name (``sdk.vocab.Tier.quality``): higher is better."""
    return parse_tier(tier).quality


@dataclass
class Profile:
    """What the policy knows of a variant: quality and latency on this device (ms, None = unknown)."""

    key: Key
    quality: float
    p50: float | None = None
    p95: float | None = None
    source: str = "unknown"  # "manifest", "measured" or "unknown"

    @property
    def label(self) -> str:
        return f"{self.key[0]}/{self.key[1]}"


@dataclass(frozen=True)
class Decision:
    target: Key
    reason: str


def default_rules(down_after_s: float = 3.0, up_after_s: float = 30.0) -> list[str]:
    return [f"p95 > budget for {down_after_s}s -> step_down", f"headroom for {up_after_s}s -> step_up"]


class TierPolicy:
    """Decides the variant from device state, observed latency and rules (pure; clock injected)."""

    def __init__(self, profiles: Iterable[Profile], rules: Iterable[str | Mapping[str, Any] | Rule] = (), *,
                 budget_ms: float | None = None, min_dwell_s: float = 5.0, headroom_ratio: float = 0.8,
                 speedup_margin: float = 0.10, clock: Callable[[], float] = time.monotonic) -> None:
        self.profiles = {p.key: p for p in profiles}
        self.rules = rules_from_config(rules)
        self.budget_ms = budget_ms
        self.min_dwell_s = min_dwell_s
        self.headroom_ratio = headroom_ratio
        self.speedup_margin = speedup_margin
        self.clock = clock
        self.quarantined: set[Key] = set()
        self.limit_quality: float | None = None  # external cap (degradation ladder)
        self.last_switch = -math.inf

    # ---- ladder -----------------------------------------------------------------------------------
    @staticmethod
    def speed(p: Profile) -> float | None:
        """The latency that orders variants: p50 (steadier than p95 on a busy machine), else p95."""
        return p.p50 if p.p50 is not None else p.p95

    def ordered(self) -> list[Profile]:
        """Usable variants, best quality first (ties: faster first)."""
        ps = [p for k, p in self.profiles.items() if k not in self.quarantined]
        return sorted(ps, key=lambda p: (-p.quality, self.speed(p) if self.speed(p) is not None else math.inf))

    def ladder(self, limited: bool = False) -> list[Profile]:
        """``ordered()`` keeping only variants measured faster than every better one; with
        ``limited`` the max/min tier limits are applied first."""
        out: list[Profile] = []
        best = math.inf
        for p in self.limited(self.ordered()) if limited else self.ordered():
            ms = self.speed(p)
            if ms is None or not out or ms < best * (1.0 - self.speedup_margin):
                out.append(p)
                best = min(best, ms if ms is not None else best)
        return out

    def fits(self, p: Profile, slowdown: float = 1.0, ratio: float = 1.0) -> bool:
        if self.budget_ms is None or p.p95 is None:
            return True
        return p.p95 * slowdown <= ratio * self.budget_ms

    def initial(self) -> Key | None:
        """Best-quality ladder variant that fits the budget, else the fastest."""
        allowed = self.ladder(limited=True)
        if not allowed:
            return None
        return next((p.key for p in allowed if self.fits(p)), allowed[-1].key)

    def fallback(self, failed: Key) -> Key | None:
        """Next usable variant after ``failed``: the next faster one on the ladder, else any other."""
        ladder = [p.key for p in self.ladder()]
        pos = next((i for i, p in enumerate(self.ordered()) if p.key == failed), 0)
        below = [p.key for p in self.ordered()[pos:] if p.key != failed and p.key in ladder]
        others = [p.key for p in self.ordered() if p.key != failed]
        return (below or others or [None])[0]

    def limited(self, ordered: list[Profile]) -> list[Profile]:
        """``ordered`` under the active max/min tier limits and the external cap."""
        caps = [tier_quality(r.tier) for r in self.rules if r.active and r.action == "max_tier" and r.tier]
        floors = [tier_quality(r.tier) for r in self.rules if r.active and r.action == "min_tier" and r.tier]
        if self.limit_quality is not None:
            caps.append(self.limit_quality)
        top = min(caps, default=math.inf)
        out = [p for p in ordered if p.quality <= top and p.quality >= max(floors, default=-math.inf)]
        if not out:
            out = [p for p in ordered if p.quality <= top] or ordered[-1:]
        return out

    # ---- decision ---------------------------------------------------------------------------------
    def values(self, current: Key, state: DeviceState | None, p50: float | None, p95: float | None,
               level: int = 0) -> dict[str, Any]:
        """The names rules see."""
        s = state or DeviceState(timestamp=0.0)
        return {"battery": s.battery_percent, "charging": s.charging, "temperature": s.temperature_c,
                "cpu": s.cpu_percent, "mem": s.mem_percent, "power_mode": s.power_mode, "p50": p50, "p95": p95,
                "budget": self.budget_ms, "tier": current[0], "level": level,
                "headroom": self.headroom(current, p95)}

    def headroom(self, current: Key, p95: float | None) -> bool:
        """The next better allowed variant is expected (its profile × the current slowdown) to run
        under ``headroom_ratio × budget``."""
        cur_q = self.profiles[current].quality if current in self.profiles else math.inf
        better = [p for p in self.ladder(limited=True) if p.quality > cur_q]
        if not better:
            return False
        nxt = better[-1]
        cur = self.profiles.get(current)
        slowdown = p95 / cur.p95 if p95 and cur is not None and cur.p95 else 1.0
        if self.budget_ms is not None and p95 is not None and p95 > self.budget_ms:
            return False
        return self.fits(nxt, max(slowdown, 1.0), self.headroom_ratio)

    def decide(self, current: Key, state: DeviceState | None = None, p50: float | None = None,
               p95: float | None = None, now: float | None = None, level: int = 0) -> Decision | None:
        """A switch to make now, or None. Call ``switched`` once the switch happened."""
        now = self.clock() if now is None else now
        values = self.values(current, state, p50, p95, level)
        fired = [r for r in self.rules if r.update(values, now, self.min_dwell_s)]
        if now - self.last_switch < self.min_dwell_s:
            return None
        allowed = self.ladder(limited=True)
        keys = [p.key for p in allowed]
        if not keys:
            return None
        limits = [r.name for r in fired if r.action in ("max_tier", "min_tier")]
        if current not in keys:
            why = "limit: " + ", ".join(limits) if limits else "limit lifted (current variant is not faster than a better one)"
            target = next((p.key for p in allowed if self.fits(p)), keys[-1])
            return Decision(target, why)
        pos = keys.index(current)
        downs = [r.name for r in fired if r.action == "step_down"]
        if downs:
            return Decision(keys[pos + 1], "step_down: " + ", ".join(downs)) if pos + 1 < len(keys) else None
        ups = [r.name for r in fired if r.action == "step_up"]
        if ups and pos > 0:
            return Decision(keys[pos - 1], "step_up: " + ", ".join(ups))
        return None

    def switched(self, now: float | None = None) -> None:
        """Record a switch: starts the dwell time and restarts the rules' ``for`` timers."""
        now = self.clock() if now is None else now
        self.last_switch = now
        for r in self.rules:
            r.restart(now)
