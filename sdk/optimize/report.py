"""The optimizer's report: a Pareto plot (score vs latency, marker area ∝ model size), a
Markdown and an HTML table of the tiers, and the per-layer sensitivity table."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from sdk.optimize.toolchain import OptimizeResult

COLUMNS = ("tier", "backend", "status", "score", "drop (pts)", "p50 ms", "p95 ms", "speed-up", "size KiB",
           "peak mem MiB", "energy mJ", "notes")


def _fmt(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def rows(res: OptimizeResult) -> list[list[str]]:
    """One row of strings per tier, in ``COLUMNS`` order."""
    base = next((t.latency_ms_p50 for t in res.tiers if t.key == "fp32/onnxruntime"), None)
    out = []
    for t in res.tiers:
        notes = t.reason
        agree = t.extra.get("agreement")
        if agree:
            notes = (f"vs {agree['vs']}: top-1 agreement {agree['top1_agreement_pct']:.1f}%, "
                     f"max |diff| {agree['max_abs_diff']:.2g}")
        if t.extra.get("excluded_nodes"):
            notes = f"float layers: {', '.join(t.extra['excluded_nodes'])}"
        speed = (base / t.latency_ms_p50) if base and t.latency_ms_p50 else None
        out.append([t.tier, t.backend, t.status, _fmt(t.score, 2), _fmt(t.drop_pts, 2), _fmt(t.latency_ms_p50),
                    _fmt(t.latency_ms_p95), "-" if speed is None else f"{speed:.2f}x",
                    _fmt(None if t.size_bytes is None else t.size_bytes / 1024, 1),
                    _fmt(None if t.peak_mem_bytes is None else t.peak_mem_bytes / 2**20, 1),
                    _fmt(t.energy_mj), notes])
    return out


def markdown(res: OptimizeResult) -> str:
    lines = [f"# Optimization report: {res.name}", "",
             (f"Device class `{res.device_class}`, task {res.task}, fp32 score "
             f"{_fmt(res.fp32_score, 2)}, budget {res.max_drop} points. Latency: 1 thread, single sample."), "",
             "![Pareto plot](pareto.png)", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows(res)]
    if res.sensitivity:
        lines += ["", "## Per-layer sensitivity (int8 on this layer only)", "",
                  "| rank | layer | score | drop (pts) | output error |", "|---|---|---|---|---|"]
        lines += [f"| {i + 1} | `{s.node}` | {s.score:.2f} | {s.drop_pts:.2f} | {s.output_error:.4f} |"
                  for i, s in enumerate(res.sensitivity)]
    if res.mixed is not None:
        verdict = "within" if res.mixed.within_budget else "NOT within"
        n_sel = res.mixed.selection.get("samples")
        lines += ["", (f"Mixed precision: {len(res.mixed.excluded)} layer(s) kept in float, chosen on a selection "
                  f"part of the evaluation data ({n_sel} samples; the table scores the other part): selection "
                  f"score {_fmt(res.mixed.score, 2)} ({verdict} the {res.max_drop}-point budget).")]
    return "\n".join(lines) + "\n"


def html_report(res: OptimizeResult) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows(res))
    sens = ""
    if res.sensitivity:
        sens = ("<h2>Per-layer sensitivity</h2><table><tr><th>rank</th><th>layer</th><th>score</th>"
                "<th>drop (pts)</th><th>output error</th></tr>" + "".join(
                    f"<tr><td>{i + 1}</td><td><code>{html.escape(s.node)}</code></td><td>{s.score:.2f}</td>"
                    f"<td>{s.drop_pts:.2f}</td><td>{s.output_error:.4f}</td></tr>"
                    for i, s in enumerate(res.sensitivity)) + "</table>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(res.name)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:last-child{text-align:left}"
            "</style></head><body>"
            f"<h1>Optimization report: {html.escape(res.name)}</h1>"
            f"<p>Device class <code>{html.escape(res.device_class)}</code>, task {html.escape(res.task)}, "
            f"fp32 score {_fmt(res.fp32_score, 2)}, budget {res.max_drop} points.</p>"
            f"<img src='pareto.png' alt='Pareto plot' width='640'><table><tr>{head}</tr>{body}</table>"
            f"{sens}</body></html>\n")


def pareto_plot(res: OptimizeResult, path: Path) -> Path | None:
    """Score vs p50 latency, marker area ∝ size, Pareto front dashed. None when nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [t for t in res.tiers if t.status == "ok" and t.latency_ms_p50 is not None and t.score is not None]
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    biggest = max(t.size_bytes or 1 for t in pts)
    for i, t in enumerate(pts):
        ax.scatter(t.latency_ms_p50, t.score, s=40 + 600 * (t.size_bytes or 0) / biggest, alpha=0.6,
                   marker="o" if t.backend == "onnxruntime" else "s")
        ax.annotate(t.key, (t.latency_ms_p50, t.score), fontsize=8, xytext=(6, 4 - 11 * (i % 3)),
                    textcoords="offset points")
    front, best = [], -float("inf")
    for t in sorted(pts, key=lambda t: t.latency_ms_p50 or 0):
        if (t.score or 0) > best:
            front.append(t)
            best = t.score or 0
    ax.plot([t.latency_ms_p50 for t in front], [t.score for t in front], "k--", lw=1, label="Pareto front")
    ax.set_xlabel("latency p50, 1 thread (ms)")
    ax.set_ylabel("accuracy (%)" if res.task == "classification" else "score")
    ax.set_title(f"{res.name} on {res.device_class} (marker area ∝ size; ○ ONNX, □ LiteRT)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(res: OptimizeResult) -> dict[str, Path]:
    """Write ``pareto.png``, ``report.md`` and ``report.html`` into the result folder."""
    paths = {"markdown": res.folder / "report.md", "html": res.folder / "report.html"}
    plot = pareto_plot(res, res.folder / "pareto.png")
    if plot is not None:
        paths["plot"] = plot
    paths["markdown"].write_text(markdown(res))
    paths["html"].write_text(html_report(res))
    return paths
