"""``ember fleet simulate``: N simulated devices, each a real ``Telemetry`` publisher with its own
spool, fed by a small image generator; some devices drift (their scene gets darker over time), and
devices switch tiers now and then. For demos and load tests."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from sdk.events import EventBus
from sdk.telemetry.core import Telemetry
from sdk.telemetry.profile import ReferenceProfile
from sdk.telemetry.settings import TelemetrySettings
from sdk.telemetry.simulate_profile import LABELS, synthetic_frame, tiny_profile
from sdk.vocab import Precision

TIERS = (Precision.FP32.value, Precision.FP16.value, Precision.INT8.value)


class SimulatedDevice:
    """One device: a generator of 24×32 frames whose brightness drifts when ``drifting``."""

    def __init__(self, name: str, settings: TelemetrySettings, profile: ReferenceProfile, drifting: bool,
                 seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.drifting = drifting
        self.bus = EventBus()
        self.battery = 100.0 - 30 * self.rng.random()
        self.tel = Telemetry(settings, kind="image", profile=profile, labels=LABELS, bus=self.bus,
                             device_state=self._device_state)
        self.name = name
        self.frames = 0
        self.tier: str | None = None

    def _device_state(self) -> dict[str, Any]:
        self.battery = max(0.0, self.battery - 0.05)
        return {"battery_percent": round(self.battery, 1), "temperature_c": round(45 + 5 * self.rng.random(), 1),
                "cpu_percent": round(20 + 30 * self.rng.random(), 1)}

    def step(self, elapsed: float) -> None:
        shift = min(60.0, 4.0 * elapsed) if self.drifting else 0.0
        frame = synthetic_frame(self.rng, shift)
        probs = self.rng.dirichlet((4.0, 2.0, 1.0))
        self.tel.observe(frame, probs)
        self.frames += 1

    def report(self, fps: float) -> None:
        if self.tier is None or self.rng.random() < 0.05:  # the manager's event shape, starting with "initial"
            new = TIERS[int(self.rng.integers(len(TIERS)))]
            self.bus.publish("tier.switch", reason="simulated" if self.tier else "initial", to_tier=new,
                             **{"from": self.tier, "to": new, "from_tier": self.tier})
            self.tier = new
        p50 = float(8 + self.rng.random() * 2)
        self.tel.publish_telemetry(fps=round(fps, 2), latency_p50_ms=round(p50, 2),
                                   latency_p95_ms=round(p50 * 1.4, 2), drops=0)


def simulate(broker: str, devices: int = 5, fleet: str = "sim", duration_s: float = 30.0, fps: float = 10.0,
             spool_dir: str | os.PathLike[str] = "sim-spools", drift_every: int = 3, seed: int = 0,
             progress: bool = True) -> dict[str, Any]:
    """Run the devices for ``duration_s``; every ``drift_every``-th device drifts. Returns counts."""
    profile = tiny_profile(seed)
    Path(spool_dir).mkdir(parents=True, exist_ok=True)
    sims = []
    for i in range(devices):
        s = TelemetrySettings(broker=broker, fleet=fleet, device_id=f"sim{i:03d}",
                              spool=str(Path(spool_dir) / f"sim{i:03d}.spool"), window_block=32,
                              window_blocks=4, reconnect_min_s=0.2).finish()
        sims.append(SimulatedDevice(s.device_id, s, profile, drifting=drift_every > 0 and i % drift_every == 0,
                                    seed=seed + i + 1))
    for d in sims:
        d.tel.start()
    random.seed(seed)
    start = time.monotonic()
    next_report = start + 1.0
    period = 1.0 / fps
    bar = tqdm(total=int(duration_s), desc=f"simulating {devices} devices", unit="s", disable=not progress)
    try:
        while (now := time.monotonic()) - start < duration_s:
            for d in sims:
                d.step(now - start)
            if now >= next_report:
                for d in sims:
                    d.report(fps)
                next_report += 1.0
                bar.update(1)
            time.sleep(max(0.0, period - (time.monotonic() - now)))
    except KeyboardInterrupt:
        pass
    finally:
        bar.close()
        for d in sims:
            d.tel.close(flush_timeout=2.0)
    return {"devices": devices, "frames": sum(d.frames for d in sims), "seconds": round(time.monotonic() - start, 1),
            "drifting": [d.name for d in sims if d.drifting]}
