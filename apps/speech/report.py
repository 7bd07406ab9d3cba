"""``ember eval speech`` (accuracy, confusion plot, streaming figures) and the app's part of ``ember demo``."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from apps.speech.data import list_clips
from apps.speech.evaluate import (
    accuracy_report,
    clip_predictions,
    decide,
    score_keywords,
    score_negatives,
    streams_from,
    window_posteriors,
)
from sdk.errors import SourceError


def evaluate_folder(spotter: Any, folder: Path, stream: bool = False, hours: float = 1.0, seed: int = 0,
                    plot: str | None = None) -> dict[str, Any]:
    """Top-1 accuracy (per class, confusion) of ``spotter``'s model on ``folder``; with ``stream`` also the
    miss rate on a keyword stream and false accepts per hour on a negative stream, at its settings."""
    clips = [c for c in list_clips(folder) if c.label in spotter.labels]
    if not clips:
        raise SourceError(str(folder), "no clips with this model's labels", f"label folders: {', '.join(spotter.labels)}")
    t0 = time.perf_counter()
    probs = clip_predictions(spotter, clips)
    out: dict[str, Any] = {"data": str(folder), "model": str(spotter.folder), "tier": spotter.manager.tier,
                           "backend": spotter.manager.current[1],
                           **accuracy_report(probs, [c.label for c in clips], spotter.labels)}
    if stream:
        out["stream"] = stream_figures(spotter, clips, hours, seed)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    if plot:
        out["plot"] = plot_confusion(out, plot)
    return out


def stream_figures(spotter: Any, clips: list, hours: float, seed: int, noise: Any = ()) -> dict[str, Any]:
    kw_stream, neg_stream = streams_from(clips, spotter.keywords, hours, seed, noise)
    res: dict[str, Any] = {"settings": asdict(spotter.settings)}
    for name, s in (("keyword_stream", kw_stream), ("negative_stream", neg_stream)):
        times, probs, loud = window_posteriors(spotter, s.audio)
        found = decide(times, probs, loud, spotter.labels, spotter.keywords, spotter.settings)
        gated = int((loud < spotter.settings.gate).sum()) if spotter.settings.gate else 0
        score = score_keywords(s, found) if name == "keyword_stream" else score_negatives(s, found)
        res[name] = {**score, "seconds": round(len(s.audio) / 16000, 1), "windows": len(times), "gated": gated}
    res["miss_rate"] = res["keyword_stream"]["miss_rate"]
    res["false_accepts_per_hour"] = res["negative_stream"]["false_accepts_per_hour"]
    return res


def plot_confusion(result: dict[str, Any], path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = np.array(result["confusion"], np.float64)
    norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    labels = result["labels"]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if conf[i, j]:
                ax.text(j, i, int(conf[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"speech: top-1 {result['accuracy'] * 100:.1f} % on {result['clips']} clips ({result['tier']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def demo(out_dir: Path, config: Any, say: Any) -> list[str]:
    """Spot keywords in the bundled recording; lines for ``ember demo``."""
    from apps.speech.live import SAMPLE, run_stream
    from apps.speech.spotter import KeywordSpotter

    out_dir.mkdir(parents=True, exist_ok=True)
    found: list[dict[str, Any]] = []
    say(f"speech: listening to {SAMPLE.name} (Speech Commands clips, CC BY 4.0, see apps/speech/samples/)")
    spotter = KeywordSpotter.from_folder(config=config)
    try:
        summary = run_stream(spotter, str(SAMPLE), found.append)
    finally:
        spotter.close()
    expected = (SAMPLE.parent / "keywords.txt").read_text().split()
    lines = [f"  {d['time_s']:6.2f} s  {d['keyword']:<6} {d['confidence']:.2f}" for d in found]
    got = [d["keyword"] for d in found]
    lines.append(f"  speech: {len(found)} detections {got}; spoken: {expected}; "
                 f"{summary['skipped']}/{summary['windows']} quiet windows skipped by the energy gate")
    return lines
