"""Classify every frame of a video with a pipeline and print live statistics.

    python examples/classify_video.py [VIDEO]

Without VIDEO it writes a 10 s clip of the demo scene first. The model is Ember's demo model
(which quadrant of the picture is the ball in?).
"""

import sys
from pathlib import Path

from sdk.demo import MODEL
from sdk.demo.scene import QUADRANTS, write_clip
from sdk.pipeline import CallbackSink, Pipeline
from sdk.pipeline.classify import classification_stages

video = sys.argv[1] if len(sys.argv) > 1 else "example-clip.mp4"
if len(sys.argv) == 1:
    write_clip(video, frames=300)

counts: dict[str, int] = {}


def count(packet) -> None:  # type: ignore[no-untyped-def]
    label = packet.value["label"]
    counts[label] = counts.get(label, 0) + 1


pipe = Pipeline(f"file://{Path(video).resolve()}", classification_stages(MODEL, labels=QUADRANTS),
                sinks=[CallbackSink(count)])
stats = pipe.run(on_stats=lambda s: print(s.summary()), stats_every=1.0)
print(f"{stats.items_out} frames, {stats.fps_overall:.0f} fps; the ball was seen in: {counts}")
