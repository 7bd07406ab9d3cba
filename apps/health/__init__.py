"""Health reference app: ECG arrhythmia detection (``ember run health``, ``ember eval health``).

Python API::

    from apps.health import HealthMonitor, BeatStream, BeatClassifier, RhythmMonitor
    mon = HealthMonitor(rate=360)
    events = mon.process(block_mv) + mon.finish()

``BeatDetector`` is the streaming integer QRS detector (``QrsDetector``), ``BeatStream`` adds beat
windows and RR features, ``BeatClassifier`` runs the shipped model, ``RhythmMonitor`` raises alerts.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from apps.health.app import add_eval_arguments, add_run_arguments, evaluate, run
from apps.health.features import BeatInput, BeatStream
from apps.health.frontend import QrsDetector
from apps.health.quality import QualityMonitor
from apps.health.rhythm import RhythmMonitor

BeatDetector = QrsDetector


def __getattr__(name: str) -> Any:   # onnxruntime-backed parts load lazily
    if name == "BeatClassifier":
        from apps.health.classifier import BeatClassifier
        return BeatClassifier
    if name == "HealthMonitor":
        from apps.health.monitor import HealthMonitor
        return HealthMonitor
    raise AttributeError(name)


def _demo(out_dir: Any, config: Any, say: Any) -> list[str]:
    from apps.health.demo import demo
    return demo(out_dir, config, say)


APP = SimpleNamespace(add_run_arguments=add_run_arguments, run=run, add_eval_arguments=add_eval_arguments,
                      evaluate=evaluate, demo=_demo)

__all__ = ["APP", "BeatDetector", "BeatInput", "BeatStream", "QrsDetector", "QualityMonitor", "RhythmMonitor"]
