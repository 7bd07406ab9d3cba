"""The architecture search's picture: accuracy against surrogate latency, every trial, the Pareto front
after refinement, the chosen architecture and the latency budget (a PNG via matplotlib's Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_front(result: Any, path: str | Path) -> Path:
    """Write ``path``: searched trials (grey; over budget: red ×), the refined front (line) and the choice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    ok = [c for c in result.trials if c.feasible]
    over = [c for c in result.trials if not c.feasible]
    effort = f"{result.efforts[0]:.2g}" if result.efforts else "?"
    ax.scatter([c.costs["latency_ms"] for c in ok], [c.accuracy for c in ok], s=18, c="0.6",
               label=f"searched (effort {effort})")
    if over:
        ax.scatter([c.costs["latency_ms"] for c in over], [0.0] * len(over), s=22, c="tab:red", marker="x",
                   label="over a budget (not trained)")
    if result.front:
        xs = [c.costs["latency_ms"] for c in result.front]
        ax.plot(xs, [c.accuracy for c in result.front], "o-", c="tab:blue",
                label=f"Pareto front (effort {result.front[0].effort:.2g})")
    if result.chosen is not None:
        ax.scatter([result.chosen.costs["latency_ms"]], [result.chosen.accuracy], s=160, facecolors="none",
                   edgecolors="tab:green", linewidths=2, label="chosen", zorder=5)
    b = result.budgets
    if b.latency_ms:
        ax.axvline(b.latency_ms, ls="--", c="tab:red", lw=1, label=f"latency budget {b.latency_ms:g} ms")
    notes = [f"peak memory ≤ {b.memory_kb:g} KiB" if b.memory_kb else "",
             f"energy ≤ {b.energy_mj:g} mJ" if b.energy_mj else ""]
    if any(notes):
        ax.text(0.99, 0.02, "budgets: " + ", ".join(n for n in notes if n), transform=ax.transAxes,
                ha="right", va="bottom", fontsize=8, color="tab:red")
    ax.set_xlabel("latency (ms, surrogate, this device)")
    ax.set_ylabel("accuracy (%, validation)")
    ax.set_title(f"architecture search {result.study}: {len(result.trials)} architectures")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right" if not any(notes) else "center right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
