"""The vision app's part of ``ember demo``: a short clip of a public-domain photo (Grace Hopper,
U.S. Navy, shipped inside matplotlib; see ``apps/vision/ATTRIBUTION.md``) crossing a drawn road,
run through the app (detection, tracking, a counting line, a region), written as an annotated video."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from apps.vision.app import MODEL_DIR, make_scene


def hopper() -> Any:
    import cv2
    from matplotlib import cbook

    return cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))


def sample_clip(path: Path, frames: int = 48) -> str:
    """Write the app's sample clip (the photo crossing a drawn road, 640x360, 15 fps) to ``path``."""
    from apps.vision.synth import Sprite, moving_objects, road, write_clip

    seq = moving_objects(road(640, 360), [Sprite(hopper(), "person")], frames=frames, seed=1,
                         height_frac=(0.55, 0.6))
    return write_clip(seq.frames, str(path))


def demo(out_dir: Path, config: Any, say: Callable[[str], None], frames: int = 48) -> list[str]:
    from apps.vision.live import stages
    from sdk.detect import Detector
    from sdk.pipeline import JsonlSink, Pipeline, VideoSink

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clip = sample_clip(out_dir / "clip.mp4", frames)
    say(f"vision: {frames}-frame clip {clip} (a public-domain photo crossing a drawn road)")
    with Detector.from_folder(MODEL_DIR, tier="fp32", config=config) as det:
        scene = make_scene(det, ["220,40,200,300"], ["320,0,320,360"])
        video = out_dir / "annotated.mp4"
        pipe = Pipeline(f"file://{clip}", stages(det, scene),
                        [VideoSink(video, draw=scene.draw), JsonlSink(out_dir / "detections.jsonl")], name="vision-demo")
        stats = pipe.run()
    s = scene.summary()
    return [(f"  vision: {s['frames']} frames at {stats.as_dict().get('fps') or 0:.1f} fps, objects tracked "
            f"{s['objects'] or 'none'}, events {s['events'] or 'none'}, line counts {s['counts'].get('line1') or 'none'}"),
            f"  vision: annotated video {video}, JSON lines {out_dir / 'detections.jsonl'}"]
