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
from sdk.degrade import Degrader, Step, TierStep

SAMPLE = Path(__file__).parent / "samples" / "keywords.flac"


class GateStep(Step):
    """Skip the model on more of the quiet input: raise the energy gate to ``gate``."""

    name, order = "gate", 2

    def __init__(self, spotter: KeywordSpotter, gate: float) -> None:
        super().__init__()
        self.spotter, self.gate, self._saved = spotter, gate, spotter.settings.gate

    def engage(self) -> None:
        super().engage()
        self._saved = self.spotter.settings.gate
        self.spotter.settings.gate = max(self.gate, self._saved)

    def release(self) -> None:
        super().release()
        self.spotter.settings.gate = self._saved


class HopStep(Step):
    """Run the model less often: lengthen the window hop to ``hop_ms``."""

    name, order = "hop", 1

    def __init__(self, spotter: KeywordSpotter, hop_ms: float) -> None:
        super().__init__()
        self.spotter, self.hop_ms, self._saved = spotter, hop_ms, spotter.settings.hop_ms

    def engage(self) -> None:
        super().engage()
        self._saved = self.spotter.settings.hop_ms
        self.spotter.set_hop(max(self.hop_ms, self._saved))

    def release(self) -> None:
        super().release()
        self.spotter.set_hop(self._saved)


def degrader(spotter: KeywordSpotter, budget_ms: float, **kwargs: Any) -> Degrader:
    """The speech ladder around ``spotter.process``: gate, then hop x2, then the fastest tier."""
    steps = [GateStep(spotter, max(spotter.settings.gate, 1.0) * 1.5 + 10), HopStep(spotter, spotter.settings.hop_ms * 2),
             TierStep(spotter.manager)]
    kwargs.setdefault("down", "p95 > budget or (battery < 20 and not charging) for 2s")
    return Degrader(spotter.process, steps, budget_ms=budget_ms, name="speech", **kwargs)


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

    step = degrader(spotter, budget_ms or spotter.settings.hop_ms, device=device)
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
