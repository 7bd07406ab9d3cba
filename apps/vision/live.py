"""The vision app's pipeline: preprocess → infer (tier-switching manager) → decode → track + zone
events, with JSON lines, video/window output and telemetry as sinks."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sdk.detect import Detection, Detector, Tracker, Zones, draw_detections, draw_zones
from sdk.pipeline import Stage


@dataclass
class Scene:
    """Tracking and zone state over a stream; ``__call__`` is the pipeline's last stage."""

    detector: Detector
    tracker: Tracker | None
    zones: Zones
    threshold: float
    frame: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    seen: Counter = field(default_factory=Counter)  # detections per class
    ids: dict[str, set] = field(default_factory=dict)  # track ids per class

    def __call__(self, detections: list[Detection]) -> dict[str, Any]:
        shown = [d for d in detections if d.score >= self.threshold]
        tracks = self.tracker.update(detections) if self.tracker else []
        events = self.zones.update(tracks, self.frame)
        self.events.extend(events)
        self.seen.update(d.label for d in shown)
        for t in tracks:
            self.ids.setdefault(t.label, set()).add(t.track_id)
        self.frame += 1
        return {"detections": shown, "tracks": tracks, "events": events, "tier": self.detector.manager.tier}

    def summary(self) -> dict[str, Any]:
        return {"frames": self.frame, "detections": dict(self.seen),
                "objects": {k: len(v) for k, v in sorted(self.ids.items())},
                "events": dict(Counter(e["event"] for e in self.events)), "counts": self.zones.counts()}

    def draw(self, frame: Any, packet: Any) -> Any:
        value = packet.value or {}
        draw_zones(frame, self.zones)
        return draw_detections(frame, value.get("tracks") if self.tracker else value.get("detections", []))


def stages(detector: Detector, scene: Scene) -> list[Stage]:
    low = min(scene.threshold, scene.tracker.low) if scene.tracker else scene.threshold

    def infer(packed: tuple) -> tuple:
        x, lb = packed
        return detector.infer(x), lb

    def decode(packed: tuple) -> list[Detection]:
        outputs, lb = packed
        return detector.postprocess(outputs, lb, low)

    return [Stage("preprocess", detector.preprocess), Stage("infer", infer), Stage("decode", decode),
            Stage("track", scene)]
