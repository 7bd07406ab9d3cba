"""``ember run speech``: a source URI -> keyword detections (printed or JSON lines), with telemetry and
graceful degradation (raise the energy gate, lengthen the hop, cheapest tier: one ``degrade.step`` each)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from apps.speech.spotter import KeywordSpotter

SAMPLE = Path(__file__).parent / "samples" / "keywords.flac"


def degrader(spotter: KeywordSpotter, budget_ms: float, **kwargs: Any) -> Any:
    """The speech ladder around ``spotter.process``: the model's fastest tier, then a higher energy gate
    (more quiet windows skipped), then twice the hop (half the windows); each step a ``degrade.step`` event."""
    from sdk.degrade import SetStep

    s = spotter.settings
    steps = [SetStep("gate", spotter, gate=max(s.gate * 1.25, s.gate + 10.0)),
             SetStep("hop", spotter, hop_ms=min(1000.0, s.hop_ms * 2))]
    kwargs.setdefault("down", "p95 > budget or (battery < 20 and not charging) for 2s")
    return spotter.manager.degrader(spotter.process, steps, budget_ms=budget_ms, **kwargs)


def source_uri(uri: str | None, hop_ms: float) -> str:
    """The source URI with the audio options the spotter needs (16 kHz mono chunks of one hop)."""
    uri = uri or f"file://{SAMPLE}"
    if "://" not in uri:
        uri = f"file://{uri}"
    sep = "&" if "?" in uri else "?"
    return f"{uri}{sep}rate=16000&channels=1&chunk_ms={hop_ms:g}&hop_ms={hop_ms:g}"


def emitter(jsonl: str | None) -> tuple[Callable[[dict[str, Any]], None], TextIO | None]:
    if jsonl is None:
        return (lambda r: print(f"{r['time_s']:8.2f} s  {r['keyword']:<8} {r['confidence']:.2f}", flush=True)), None
    f = sys.stdout if jsonl == "-" else open(jsonl, "a", encoding="utf-8")  # noqa: SIM115 - closed by the caller
    return (lambda r: (f.write(json.dumps(r) + "\n"), f.flush())), (None if f is sys.stdout else f)


def run_stream(spotter: KeywordSpotter, uri: str, emit: Callable[[dict[str, Any]], None],
               telemetry: Any = None, budget_ms: float | None = None, device: Any = None) -> dict[str, Any]:
    """Spot keywords on ``uri`` until it ends (or Ctrl-C); returns a summary."""
    from sdk.sources import open_source

    step = degrader(spotter, budget_ms or spotter.settings.hop_ms, **({"device": device} if device else {}))
    n, t0 = 0, time.perf_counter()
    try:
        with open_source(source_uri(uri, spotter.settings.hop_ms)) as src:
            for item in src:
                chunk = np.asarray(item.data, np.float32).reshape(len(item.data), -1)
                for d in step(chunk):
                    n += 1
                    emit({"keyword": d.keyword, "time_s": d.time_s, "confidence": round(d.confidence, 4),
                          "tier": spotter.manager.tier})
                if telemetry is not None:
                    telemetry.observe(chunk[:, 0], spotter.last_probs)
    except KeyboardInterrupt:
        pass
    return {"detections": n, "seconds": round(time.perf_counter() - t0, 3), "degraded": step.engaged(),
            **spotter.stats()}
