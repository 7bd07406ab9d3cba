"""Plots: the last minutes of signal with beats coloured by class and alert spans; a confusion matrix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from apps.health.frontend import RATE

COLOURS = {"N": "tab:green", "S": "tab:orange", "V": "tab:red", "F": "tab:purple", "Q": "tab:gray"}
ROWS_S = 20.0


def plot_events(path: str | Path, signal: np.ndarray, start: int, events: list[dict[str, Any]]) -> Path:
    """Signal (mV at 360 Hz, first sample = stream sample ``start``) in rows of 20 s, beats, alerts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0, t1 = start / RATE, (start + len(signal)) / RATE
    rows = max(1, int(np.ceil((t1 - t0) / ROWS_S)))
    fig, axes = plt.subplots(rows, 1, figsize=(14, 1.8 * rows + 0.6), squeeze=False)
    t = t0 + np.arange(len(signal)) / RATE
    beats = [e for e in events if e["type"] == "beat" and t0 <= e["t"] < t1]
    alerts = [e for e in events if e["type"] == "alert" and e["event"] == "end"]
    for k, ax in enumerate(axes[:, 0]):
        a, b = t0 + k * ROWS_S, t0 + (k + 1) * ROWS_S
        m = (t >= a) & (t < b)
        ax.plot(t[m], signal[m], lw=0.6, color="black")
        for e in beats:
            if a <= e["t"] < b:
                y = signal[min(len(signal) - 1, e["sample"] - start)]
                ax.plot(e["t"], y, "o", ms=4, color=COLOURS.get(e["class"], "k"))
        for e in alerts:
            lo, hi = max(e["start_s"], a), min(e["end_s"] or b, b)
            if lo < hi or (e["start_s"] == e["end_s"] and a <= lo < b):
                ax.axvspan(lo, max(hi, lo + 0.3), color="tab:red", alpha=0.15)
                ax.text(lo, ax.get_ylim()[1], e["alert"], fontsize=7, va="top", color="tab:red")
        ax.set_xlim(a, b)
        ax.set_ylabel("mV")
    axes[-1, 0].set_xlabel("time (s)")
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=k) for k, c in COLOURS.items()]
    axes[0, 0].legend(handles=handles, loc="upper right", ncol=5, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def plot_confusion(path: str | Path, result: dict[str, Any]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(result["confusion"]["matrix"])
    names = result["confusion"]["classes"]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.imshow(np.log1p(cm), cmap="Blues")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(f"health: {result['records']} records, {result['model']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
