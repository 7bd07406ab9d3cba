"""``ember fleet watch|record|report|simulate``: monitor a fleet of devices over MQTT."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sdk.errors import ConfigError
from sdk.telemetry.settings import TelemetrySettings


def register(sub: Any) -> None:
    p = sub.add_parser("fleet", help="monitor devices that publish telemetry (watch, record, report, simulate)",
                       description="Fleet monitoring over MQTT: devices publish to ember/<fleet>/<device>/...")
    fsub = p.add_subparsers(dest="fleet_command", metavar="SUBCOMMAND", title="subcommands")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--broker", metavar="URI", help="mqtt://host:1883 or mqtts://user:pass@host:8883 "
                       "(default: telemetry.broker)")
        q.add_argument("--fleet", help="fleet name (default: telemetry.fleet)")
        q.add_argument("--shared", metavar="GROUP", default="",
                       help="subscribe as $share/GROUP/... to split the load between several monitors")

    w = fsub.add_parser("watch", help="live table of every device",
                        description="Live terminal view: online/offline, tier, fps, p95, battery, temperature, "
                        "drift state per feature, last event; duplicates removed by (device, seq), gaps flagged.")
    common(w)
    w.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    w.add_argument("--refresh", type=float, default=1.0, metavar="S", help="redraw period (default 1 s)")
    w.set_defaults(func=_watch)
    r = fsub.add_parser("record", help="store the fleet's messages in SQLite or PostgreSQL",
                        description="Subscribe to the fleet and keep every message (once per device and seq) in "
                        "a SQLite file (a laptop-sized fleet) or PostgreSQL (--db postgresql://user@host/db: "
                        "tables partitioned by day, batched inserts) for 'ember fleet report' and the dashboard. "
                        "Messages are acknowledged to the broker only once committed; with --shared several "
                        "recorders split the fleet. See sdk/fleet/RECORDER.md.")
    common(r)
    r.add_argument("--db", required=True, metavar="FILE_OR_URL",
                   help="recording file (created if missing) or postgresql://user[:pass]@host[:port]/dbname")
    r.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    r.add_argument("--batch", type=int, default=1000, metavar="N", help="rows per transaction (default %(default)s)")
    r.add_argument("--flush-ms", type=float, default=100.0, metavar="MS",
                   help="write a partial batch after MS milliseconds (default %(default)s)")
    r.add_argument("--max-buffer", type=int, default=50_000, metavar="N",
                   help="messages held in memory while the database is slow or down (default %(default)s)")
    r.add_argument("--client-id", default="", metavar="ID", help="a fixed MQTT client id: the broker keeps the "
                   "session (and the messages) for an hour while this recorder is away")
    r.set_defaults(func=_record)
    rep = fsub.add_parser("report", help="HTML report with plots from a recording or a device spool",
                          description="Write an HTML report (drift over time per device, tier changes, latency).")
    src = rep.add_mutually_exclusive_group(required=True)
    src.add_argument("--db", metavar="FILE_OR_URL", help="a recording made by 'ember fleet record' "
                     "(SQLite file or postgresql:// URL)")
    src.add_argument("--spool", metavar="FILE", help="a device spool (telemetry.spool)")
    rep.add_argument("--out", default="fleet-report.html", metavar="FILE", help="output HTML (default %(default)s)")
    rep.set_defaults(func=_report)
    s = fsub.add_parser("simulate", help="run N simulated devices against a broker",
                        description="Simulated devices (image statistics with injected drift, tier switches), each "
                        "a real publisher with its own spool. With --local-broker a private mosquitto is started.")
    common(s)
    s.add_argument("--devices", type=int, default=5, help="number of devices (default %(default)s)")
    s.add_argument("--duration", type=float, default=30.0, metavar="S", help="seconds to run (default %(default)s)")
    s.add_argument("--fps", type=float, default=10.0, help="frames per second per device (default %(default)s)")
    s.add_argument("--spool-dir", default="sim-spools", metavar="DIR", help="where the spools go")
    s.add_argument("--drift-every", type=int, default=3, metavar="K", help="every K-th device drifts (0: none)")
    s.add_argument("--local-broker", action="store_true", help="start a private mosquitto and use it")
    s.set_defaults(func=_simulate)
    p.set_defaults(func=lambda args, config: (p.print_help(), 0)[1])


def _settings(args: argparse.Namespace, config: Any) -> TelemetrySettings:
    s = TelemetrySettings.from_config(config, **{k: v for k, v in (("broker", args.broker), ("fleet", args.fleet))
                                                 if v})
    if not s.broker:
        raise ConfigError("no broker: give --broker mqtt://host:1883 or set telemetry.broker")
    return s


def _watch(args: argparse.Namespace, config: Any) -> int:
    from sdk.fleet.watch import watch

    watch(_settings(args, config), refresh_s=args.refresh, duration_s=args.duration, shared=args.shared)
    return 0


def _record(args: argparse.Namespace, config: Any) -> int:
    from sdk.fleet.record import record

    if args.batch < 1 or args.flush_ms <= 0 or args.max_buffer < args.batch:
        raise ConfigError("--batch and --flush-ms must be positive and --max-buffer at least --batch")
    print(json.dumps(record(_settings(args, config), args.db, args.duration, shared=args.shared, batch=args.batch,
                            flush_ms=args.flush_ms, max_buffer=args.max_buffer, client_id=args.client_id)))
    return 0


def _report(args: argparse.Namespace, config: Any) -> int:
    from sdk.fleet.report import write_report

    print(f"wrote {write_report(args.db or args.spool, args.out)}")
    return 0


def _simulate(args: argparse.Namespace, config: Any) -> int:
    from sdk.fleet.broker import LocalBroker
    from sdk.fleet.simulate import simulate

    broker = LocalBroker().start() if args.local_broker else None
    try:
        url = broker.url if broker else _settings(args, config).broker
        if broker:
            print(f"local broker at {url}; watch with: ember fleet watch --broker {url} --fleet {args.fleet or 'sim'}")
        out = simulate(url, devices=args.devices, fleet=args.fleet or "sim", duration_s=args.duration,
                       fps=args.fps, spool_dir=args.spool_dir, drift_every=args.drift_every)
    finally:
        if broker:
            broker.stop()
    print(json.dumps(out))
    return 0
