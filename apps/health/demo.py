"""The health app's part of ``ember demo``: the shipped one-minute excerpt of MIT-BIH record 208."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from apps.health.app import SAMPLE


def demo(out_dir: Path, config: Any, say: Any) -> list[str]:
    from apps.health.classifier import BeatClassifier
    from apps.health.metrics import class_metrics
    from apps.health.monitor import HealthMonitor
    from apps.health.plot import plot_events
    from apps.health.records import CLASSES, match, read_record

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rec = read_record(SAMPLE)
    say(f"health: streaming {len(rec.signal) / 360:.0f} s of MIT-BIH record 208 (ODC-By) through the ECG pipeline")
    mon = HealthMonitor(classifier=BeatClassifier(config=config), keep_s=len(rec.signal) / 360)
    events: list[dict[str, Any]] = []
    for s in range(0, len(rec.signal), 360):
        events += mon.process(rec.signal[s:s + 360])
    events += mon.finish()
    mon.close()
    beats = [e for e in events if e["type"] == "beat"]
    det = np.array([b["sample"] for b in beats])
    i_ref, i_det = match(rec.beats, det)
    m = class_metrics([CLASSES.index(rec.labels[i]) for i in i_ref],
                      [CLASSES.index(beats[j]["class"]) for j in i_det], CLASSES)
    alerts = Counter(e["alert"] for e in events if e["type"] == "alert" and e["event"] == "start")
    png = plot_events(out_dir / "health.png", np.asarray(mon.recent, np.float32), 0, events)
    classes = " ".join(f"{k}={v}" for k, v in mon.counts.items() if v)
    return [(f"  health: {len(beats)} beats detected ({len(i_ref)}/{len(rec.beats)} annotated beats found), "
            f"classes {classes}; agreement with the annotations {m['accuracy']:.0%} (record 208 is in the training set)"),
            f"  health: alerts {dict(alerts) or 'none'}; last HR {beats[-1]['hr']} bpm" if beats else "  health: no beats",
            f"  health: plot {png}"]
