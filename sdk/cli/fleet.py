"""``ember fleet watch|record|report|simulate|serve``: monitor a fleet of devices over MQTT."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sdk.errors import ConfigError
from sdk.telemetry.settings import TelemetrySettings


def register(sub: Any) -> None:
    p = sub.add_parser("fleet", help="monitor devices that publish telemetry (watch, record, report, simulate, serve)",
                       description="Fleet monitoring over MQTT: devices publish to ember/<fleet>/<device>/...")
    fsub = p.add_subparsers(dest="fleet_command", metavar="SUBCOMMAND", title="subcommands")

    def common(q: argparse.ArgumentParser, shared: bool = True) -> None:
        q.add_argument("--broker", metavar="URI", help="mqtt://host:1883 or mqtts://user:pass@host:8883 "
                       "(default: telemetry.broker)")
        q.add_argument("--fleet", help="fleet name (default: telemetry.fleet)")
        if shared:
            q.add_argument("--shared", metavar="GROUP", default="",
                           help="subscribe as $share/GROUP/... to split the load between several monitors")

    w = fsub.add_parser("watch", help="live table of every device",
                        description="Live terminal view: online/offline, tier, fps, p95, battery, temperature, "
                        "drift state per feature, last event; duplicates removed by (device, seq), gaps flagged.")
    common(w)
    w.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    w.add_argument("--refresh", type=float, default=1.0, metavar="S", help="redraw period (default 1 s)")
    w.set_defaults(func=_watch)
    r = fsub.add_parser("record", help="store the fleet's messages in SQLite",
                        description="Subscribe to the fleet and keep every message (once per device and seq) in "
                        "a SQLite file for 'ember fleet report'.")
    common(r)
    r.add_argument("--db", required=True, metavar="FILE", help="recording file (created if missing)")
    r.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    r.set_defaults(func=_record)
    rep = fsub.add_parser("report", help="HTML report with plots from a recording or a device spool",
                          description="Write an HTML report (drift over time per device, tier changes, latency).")
    src = rep.add_mutually_exclusive_group(required=True)
    src.add_argument("--db", metavar="FILE", help="a recording made by 'ember fleet record'")
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
    _register_serve(fsub, common)
    p.set_defaults(func=lambda args, config: (p.print_help(), 0)[1])


def _register_serve(fsub: Any, common: Any) -> None:
    v = fsub.add_parser(
        "serve", help="live web dashboard of the fleet (read-only unless --admin)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve a web page that updates live (server-sent events): devices online/offline, model "
        "version and tier, fps, latency p50/p95, battery, temperature, CPU, energy per inference, drift state per "
        "feature, drift alerts, the event log and deployments; with --db, per-device history plots (drift, "
        "latency, tier) from a recording. The page bundles its scripts (works offline).",
        epilog="examples:\n"
        "  ember fleet serve --broker mqtt://127.0.0.1:1883 --fleet sim --db fleet.db\n"
        "  ember fleet serve --broker mqtt://broker:1883 --fleet cams --host 0.0.0.0 --port 8443 \\\n"
        "      --admin --token-file token.txt --cert dash.crt --key dash.key\n\n"
        "Actions (pin/unpin a tier) go over the validated MQTT command channel and need --admin and the bearer\n"
        "token (the page asks for it; 'Authorization: Bearer TOKEN' for scripts). --admin on a non-loopback\n"
        "host needs --token-file; on loopback without one, a token is made and printed in the page's URL.")
    common(v, shared=False)  # the page shows the whole fleet
    v.add_argument("--db", metavar="FILE", help="a recording (ember fleet record --db) for the history plots")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s: this machine only)")
    v.add_argument("--port", type=int, default=8080, help="port (default %(default)s; 0: a free one)")
    v.add_argument("--admin", action="store_true", help="allow actions (pin tier) with the bearer token")
    v.add_argument("--token-file", metavar="FILE", help="file whose first line is the bearer token (>= 16 chars)")
    v.add_argument("--cert", metavar="PEM", help="TLS certificate: serve HTTPS (with --key)")
    v.add_argument("--key", metavar="PEM", help="TLS private key of --cert")
    v.set_defaults(func=_serve)


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

    print(json.dumps(record(_settings(args, config), args.db, args.duration, shared=args.shared)))
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


def _serve(args: argparse.Namespace, config: Any) -> int:
    from sdk.fleet.dashboard.server import read_token, serve

    s = _settings(args, config)
    extra = {k: getattr(s, k) for k in ("username", "password", "ca_certs", "certfile", "keyfile", "tls")
             if getattr(s, k)}
    token = read_token(args.token_file) if args.token_file else None
    serve(s.broker, s.fleet, db=args.db, host=args.host, port=args.port, admin=args.admin, token=token,
          cert=args.cert, key=args.key, **extra)
    return 0
