"""``ember run health`` and ``ember eval health``."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import EmberError, SourceError

HERE = Path(__file__).resolve().parent
SAMPLE = HERE / "sample" / "208_excerpt"


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rate", type=float, help="sampling rate in Hz when the source does not say (serial, csv)")
    p.add_argument("--lead", default="MLII", help="WFDB lead to use (default MLII, else the first channel)")
    p.add_argument("--plot", metavar="FILE", help="write a plot of the last minutes (signal, beats by class, alerts)")
    p.add_argument("--plot-minutes", type=float, default=1.0, help="minutes shown by --plot (default 1)")
    p.add_argument("--quiet", action="store_true", help="no per-beat lines, only alerts and a summary")
    p.add_argument("--telemetry", action="store_true",
                   help="publish alerts and quality changes as telemetry events (the [telemetry] config section)")


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lead", default="MLII", help="lead to use (default MLII, else the first channel)")
    p.add_argument("--records", help="comma-separated record names to use (default: all with .atr)")


def _uri(args: argparse.Namespace) -> str:
    """The source URI with the lead chosen (WFDB: ``--lead`` when the record has it, else channel 0)
    and 0.1-s blocks unless the URI says otherwise."""
    uri = args.source or f"wfdb://{SAMPLE}"
    scheme = uri.split("://", 1)[0]
    extra = []
    if scheme == "wfdb" and "channel=" not in uri:
        extra.append(f"channel={_wfdb_lead(uri, args.lead)}")
    if scheme in ("wfdb", "csv", "serial", "synthetic") and "block=" not in uri:
        extra.append("block=36")
    return uri + ("&" if "?" in uri else "?") + "&".join(extra) if extra else uri


def _wfdb_lead(uri: str, lead: str) -> str:
    import wfdb

    from apps.health.records import pick_lead

    path = re.sub(r"\.(hea|dat)$", "", uri.split("://", 1)[1].split("?", 1)[0])
    try:
        names = list(wfdb.rdheader(path).sig_name)
    except (OSError, ValueError, IndexError) as e:
        raise SourceError(uri, f"cannot read the WFDB header {path}.hea: {e}",
                          "give the record path without extension, e.g. wfdb://data/mitbih/100") from None
    return str(pick_lead(names, lead))


def _open(uri: str) -> Any:
    from sdk.sources import open_source

    src = open_source(uri)
    src.open()
    return src


def run(args: argparse.Namespace, config: Any) -> int:
    from apps.health.classifier import BeatClassifier
    from apps.health.monitor import HealthMonitor
    from sdk.events import default_bus
    from sdk.util.jsonutil import dumps

    src = _open(_uri(args))
    rate = src.meta.get("rate") or args.rate
    if not rate:
        src.close()
        raise EmberError(f"{src.uri}: the source does not say its sampling rate; give --rate HZ")
    out = (sys.stdout if args.jsonl == "-" else open(args.jsonl, "w")) if args.jsonl else None  # noqa: SIM115
    tel = None
    if args.telemetry:
        from sdk.telemetry import Telemetry

        tel = Telemetry.from_config(config, kind="ecg", sample_rate=int(rate)).start()
    mon = HealthMonitor(float(rate), BeatClassifier(args.model, args.tier, args.backend, config),
                        keep_s=args.plot_minutes * 60 if args.plot else 0.0)
    events: list[dict[str, Any]] = []
    try:
        for item in src:
            block = np.asarray(item.data, np.float32)[:, 0]
            if tel is not None:
                tel.observe(block)
            new = mon.process(block)
            _emit(new, out, args, default_bus, dumps)
            events += new
        new = mon.finish()
        _emit(new, out, args, default_bus, dumps)
        events += new
    finally:
        src.close()
        mon.close()
        if tel is not None:
            tel.close()
        if out is not None and out is not sys.stdout:
            out.close()
    counts = " ".join(f"{k}={v}" for k, v in mon.counts.items())
    print(f"health: {sum(mon.counts.values())} beats ({counts}), "
          f"{sum(e['type'] == 'alert' and e['event'] == 'start' for e in events)} alerts, model {mon.classifier.variant}",
          file=sys.stderr)
    if args.plot:
        from apps.health.plot import plot_events

        plot_events(args.plot, np.asarray(mon.recent, np.float32), mon.n - len(mon.recent), events)
    return 0


def _emit(events: list[dict[str, Any]], out: Any, args: argparse.Namespace, bus: Any, dumps: Any) -> None:
    for e in events:
        if e["type"] in ("alert", "quality"):
            bus.publish(f"health.{e['type']}", **{k: v for k, v in e.items() if k != "type"})
        if out is not None:
            out.write(dumps(e) + "\n")
        elif not (args.quiet and e["type"] == "beat"):
            print(_line(e))
    if out is not None:
        out.flush()


def _line(e: dict[str, Any]) -> str:
    if e["type"] == "beat":
        hr = f"{e['hr']:.0f} bpm" if e["hr"] else "-"
        return f"{e['t']:9.3f} s  beat {e['class']} ({e['p']:.2f})  HR {hr}"
    if e["type"] == "alert":
        when = f"{e['start_s']:.1f}-{e['end_s']:.1f} s" if e["end_s"] is not None else f"from {e['start_s']:.1f} s"
        return f"{'':11} ALERT {e['event']}: {e['alert']} {when}"
    return f"{e['t']:9.3f} s  signal {e['state']}"


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from apps.health.classifier import BeatClassifier
    from apps.health.evaluate import evaluate_folder

    clf = BeatClassifier(args.model, args.tier or "fp32", args.backend or "onnxruntime")
    try:
        names = [n.strip() for n in args.records.split(",")] if args.records else None
        result = evaluate_folder(args.data, clf, lead=args.lead, names=names)
    finally:
        clf.close()
    if args.plot:
        from apps.health.plot import plot_confusion

        plot_confusion(args.plot, result)
    return result
