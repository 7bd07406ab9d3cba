"""``TelemetrySink``: a pipeline sink that feeds every packet to ``Telemetry.observe`` and publishes
fps, latency p50/p95 and the pipeline's stats every ``interval_s``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from sdk.telemetry.core import Telemetry
from sdk.util.timing import percentiles


class TelemetrySink:
    """``Pipeline(source, stages, sinks=[TelemetrySink(tel, stats=lambda: pipe.stats())])``.

    ``stats`` (optional) returns the pipeline's stats (a dataclass, dict or object with
    ``as_dict()``); its ``dropped``/``drops`` value is reported as ``drops``.
    """

    def __init__(self, telemetry: Telemetry, interval_s: float | None = None,
                 stats: Callable[[], Any] | None = None, close_telemetry: bool = True) -> None:
        self.telemetry = telemetry
        self.interval_s = interval_s or telemetry.settings.interval_s
        self.stats = stats
        self.close_telemetry = close_telemetry
        self._lat = np.zeros(4096)
        self._n_lat = 0
        self._frames = 0
        self._last = time.monotonic()

    def open(self) -> None:
        self.telemetry.start()
        self._last = time.monotonic()

    def write(self, packet: Any) -> None:
        item = getattr(packet, "item", None)
        data = getattr(item, "data", None)
        if data is not None:
            self.telemetry.observe(data, getattr(packet, "value", None), getattr(item, "meta", None))
        lat = getattr(packet, "latency_ms", None)
        if lat is not None:
            self._lat[self._n_lat % self._lat.size] = lat
            self._n_lat += 1
        self._frames += 1
        if time.monotonic() - self._last >= self.interval_s:
            self.publish_now()

    def publish_now(self) -> None:
        """Publish one telemetry sample for the frames since the last one."""
        now = time.monotonic()
        elapsed = max(now - self._last, 1e-9)
        lat = self._lat[: min(self._n_lat, self._lat.size)]
        p50, p95 = (tuple(round(v, 3) for v in percentiles(lat.tolist(), 50, 95)) if lat.size else (None, None))
        pipeline = _as_dict(self.stats()) if self.stats is not None else None
        drops = None
        if pipeline:
            drops = pipeline.get("dropped", pipeline.get("drops"))
        self.telemetry.publish_telemetry(fps=round(self._frames / elapsed, 3), latency_p50_ms=p50,
                                         latency_p95_ms=p95, drops=drops, pipeline=pipeline)
        self._frames = 0
        self._n_lat = 0
        self._last = now

    def close(self) -> None:
        if self._frames:
            self.publish_now()
        if self.close_telemetry:
            self.telemetry.close()


def _as_dict(stats: Any) -> dict[str, Any]:
    if stats is None:
        return {}
    if isinstance(stats, dict):
        return stats
    if hasattr(stats, "as_dict"):
        return dict(stats.as_dict())
    if hasattr(stats, "__dict__"):
        return {k: v for k, v in vars(stats).items() if not k.startswith("_")}
    return {"value": str(stats)}
