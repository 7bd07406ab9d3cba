"""``ember fleet report``: an HTML page with plots (drift over time per device, tier changes,
latency) from a recording or a device spool. Plots are matplotlib PNGs embedded as base64."""

from __future__ import annotations

import base64
import html
import io
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from sdk.errors import TelemetryError
from sdk.fleet.record import load_history


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def history_series(rows: list[dict[str, Any]], t0: float) -> dict[str, Any]:
    """One device's plot data from ``load_history`` rows (times in s since ``t0``):
    ``{"psi": {feature: [[t, psi], ...]}, "latency": [[t, p50, p95], ...], "tier": [[t, tier], ...]}``."""
    psi: dict[str, list[list[float]]] = defaultdict(list)
    latency: list[list[Any]] = []
    tier: list[list[Any]] = []
    for r in rows:
        b, t = r["body"], (r["ts"] or t0) - t0
        if r["channel"] == "drift":
            for name, f in (b.get("features") or {}).items():
                if isinstance(f, dict) and f.get("psi") is not None:
                    psi[name].append([t, f["psi"]])
        elif r["channel"] == "telemetry":
            if b.get("latency_p95_ms") is not None:
                latency.append([t, b.get("latency_p50_ms"), b["latency_p95_ms"]])
            if b.get("tier"):
                tier.append([t, b["tier"]])
        elif r["channel"] == "events" and b.get("kind") == "tier.switch":
            data = b.get("data") or {}
            tier.append([t, data.get("tier") or data.get("to") or "?"])
    return {"psi": dict(psi), "latency": latency, "tier": tier}


def _device_plots(rows: list[dict[str, Any]], t0: float) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = history_series(rows, t0)
    psi = {k: ([p[0] for p in v], [p[1] for p in v]) for k, v in series["psi"].items()}
    lat_t, p50, p95 = ([x[i] for x in series["latency"]] for i in range(3))
    tier_t, tiers = [x[0] for x in series["tier"]], [x[1] for x in series["tier"]]
    plots = {}
    if psi:
        fig, ax = plt.subplots(figsize=(7, 2.6))
        for name, (ts, vs) in sorted(psi.items()):
            ax.plot(ts, vs, marker=".", label=name)
        ax.axhline(0.1, color="orange", ls="--", lw=0.8)
        ax.axhline(0.25, color="red", ls="--", lw=0.8)
        ax.set(xlabel="time (s)", ylabel="PSI", title="drift (PSI per feature)")
        ax.legend(fontsize=7, ncol=3)
        plots["drift"] = _png(fig)
    if tier_t:
        names = sorted(set(tiers))
        fig, ax = plt.subplots(figsize=(7, 1.8))
        ax.step(tier_t, [names.index(x) for x in tiers], where="post")
        ax.set_yticks(range(len(names)), names)
        ax.set(xlabel="time (s)", title="tier")
        plots["tier"] = _png(fig)
    if lat_t:
        fig, ax = plt.subplots(figsize=(7, 2.2))
        ax.plot(lat_t, p50, label="p50")
        ax.plot(lat_t, p95, label="p95")
        ax.set(xlabel="time (s)", ylabel="ms", title="latency")
        ax.legend(fontsize=7)
        plots["latency"] = _png(fig)
    return plots


def write_report(source: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Write the HTML report for ``source`` (recording DB or spool file) to ``out``."""
    rows = load_history(source)
    if not rows:
        raise TelemetryError(f"{source}: no messages to report on (a spool holds only what the broker has not "
                             "acknowledged yet: with a broker, record the fleet with 'ember fleet record')")
    t0 = min(r["ts"] or 0 for r in rows)
    by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_device[r["device"]].append(r)
    header = (f"<h1>Ember fleet report</h1><p>source: {html.escape(str(source))} — {len(rows)} messages, "
              f"{len(by_device)} devices</p>")
    columns = ("<table border=1 cellpadding=4><tr><th>device</th><th>messages</th>"
               "<th>seq range</th><th>gaps</th><th>last drift state</th><th>events</th></tr>")
    parts = [header, columns]
    for dev, rs in sorted(by_device.items()):
        seqs = sorted({r["seq"] for r in rs})
        gaps = (seqs[-1] - seqs[0] + 1) - len(seqs)
        drift = [r["body"].get("state") for r in rs if r["channel"] == "drift"]
        events = sum(r["channel"] == "events" for r in rs)
        parts.append(f"<tr><td>{html.escape(dev)}</td><td>{len(rs)}</td><td>{seqs[0]}–{seqs[-1]}</td>"
                     f"<td>{gaps}</td><td>{html.escape(str(drift[-1] if drift else '-'))}</td><td>{events}</td></tr>")
    parts.append("</table>")
    for dev, rs in sorted(by_device.items()):
        parts.append(f"<h2>{html.escape(dev)}</h2>")
        plots = _device_plots(rs, t0)
        parts.extend(f'<img alt="{k}" src="{v}">' for k, v in plots.items())
        last_events = [r["body"] for r in rs if r["channel"] == "events"][-10:]
        if last_events:
            items = "".join(f"<li>{html.escape(str(e.get('kind')))}: {html.escape(str(e.get('data')))[:200]}</li>"
                            for e in last_events)
            parts.append(f"<p>last events:</p><ul>{items}</ul>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>Ember fleet report</title></head><body>"
            + "\n".join(parts) + "</body></html>\n")
    path = Path(out)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as e:
        raise TelemetryError(f"cannot write the report to {path} ({e.strerror or e}); check --out") from None
    return path
