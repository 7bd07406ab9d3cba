"""The vision reference app: people and vehicles detected, tracked and counted on a Pi or Jetson.

    ember run vision --source v4l2:///dev/video0 --line 0,300,640,300 --video-out out.mp4 --jsonl
    ember eval vision --data DIR

Python API::

    from apps.vision import Detector, Tracker, MODEL_DIR
    det = Detector.from_folder(MODEL_DIR, tier="int8")
    tracks = Tracker().update(det.detect(frame))
"""

from __future__ import annotations

from types import SimpleNamespace

from apps.vision.app import MODEL_DIR, add_eval_arguments, add_run_arguments, evaluate, run
from apps.vision.data import CLASSES
from sdk.detect import Detection, Detector, Tracker


def _demo(out_dir, config, say):  # type: ignore[no-untyped-def]
    from apps.vision.demo import demo

    return demo(out_dir, config, say)


APP = SimpleNamespace(add_run_arguments=add_run_arguments, run=run, add_eval_arguments=add_eval_arguments,
                      evaluate=evaluate, demo=_demo)

__all__ = ["APP", "CLASSES", "MODEL_DIR", "Detection", "Detector", "Tracker"]
