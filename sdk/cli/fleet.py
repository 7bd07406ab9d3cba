"""``ember fleet watch|record|report|simulate|deploy|rollback|serve``: monitor a fleet of devices over MQTT,
roll models out to it and show it live on a web page."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sdk.errors import ConfigError
from sdk.telemetry.settings import TelemetrySettings


def register(sub: Any) -> None:
    p = sub.add_parser("fleet", help="monitor devices and roll models out (watch, record, report, simulate, "
                       "deploy, rollback, serve)", description="Fleet monitoring and model rollout over MQTT: devices "
                       "publish to ember/<fleet>/<device>/... and take commands on .../cmd")
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
    s.add_argument("--rollout", metavar="DIR", help="run rollout-ready devices instead (a real VersionStore and "
                   "ONNX Runtime model each); DIR gets a key pair and bundles of a good, a disagreeing and a slow "
                   "release to try 'ember fleet deploy' with")
    s.set_defaults(func=_simulate)
    _register_rollout(fsub, common)
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
        "Actions (pin/unpin a tier, roll a device back) go over the validated MQTT command channel; deploy uploads a\n"
        "signed bundle and runs the 'ember fleet deploy' controller (one at a time). They need --admin and the bearer\n"
        "token (the page asks for it; 'Authorization: Bearer TOKEN' for scripts). --admin on a non-loopback\n"
        "host needs --token-file; on loopback without one, a token is made and printed in the page's URL.")
    common(v, shared=False)  # the page shows the whole fleet
    v.add_argument("--db", metavar="FILE|URL", help="the recording of 'ember fleet record --db' (a SQLite file or a "
                   "postgresql:// URL) for the history plots")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s: this machine only)")
    v.add_argument("--port", type=int, default=8080, help="port (default %(default)s; 0: a free one)")
    v.add_argument("--admin", action="store_true", help="allow actions (pin/unpin a tier, roll back, deploy a bundle) with the "
                   "token")
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
        if args.rollout:
            from sdk.rollout.simfleet import prepare_demo, run_demo

            demo = prepare_demo(args.rollout)
            print(f"try: ember fleet deploy {demo['1.1.0']} --broker {url} --fleet {args.fleet or 'sim'} "
                  f"--canary 25% --soak 10   (then {demo['1.2.0'].name}: disagrees, {demo['1.3.0'].name}: slow)")
            out = {"versions": run_demo(url, args.rollout, args.devices, args.fleet or "sim", args.duration)}
        else:
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


def _register_rollout(fsub: Any, common: Any) -> None:
    d = fsub.add_parser(
        "deploy", help="roll a signed model bundle out: canary, soak, widen, or roll back",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Roll a signed bundle ('ember models pack DIR --key KEY') out to a fleet:\n"
        "  1. pick the canary group (--canary, online devices first) and measure their baseline\n"
        "  2. send them the deploy command; each downloads the bundle (--url, else MQTT chunks), checks\n"
        "     size, sha256 and signature against its own trusted keys, and shadow-tests the candidate\n"
        "     beside the active model on live inputs (--min-agreement, --max-shadow-p95-ms, ...)\n"
        "  3. watch the promoted canaries for --soak seconds: errors, latency p95, drift and app\n"
        "     metrics against the limits; any regression rolls the canaries back automatically\n"
        "  4. widen to every other device; offline devices get it when they reconnect.\n"
        "Every step is an event with the deployment id (ember/<fleet>/_deploy/events).")
    common(d, shared=False)
    d.add_argument("bundle", metavar="BUNDLE", help="the signed bundle file")
    d.add_argument("--devices", nargs="+", default=[], metavar="ID", help="only these devices (default: all)")
    d.add_argument("--canary", default="10%", help="canary group: a share (10%%) or a count (2) (default %(default)s)")
    d.add_argument("--url", help="https://... where devices download the bundle (your server); "
                   "default: send it as MQTT chunks (small models)")
    d.add_argument("--soak", type=float, default=60.0, metavar="S", help="seconds to watch the canaries (default 60)")
    d.add_argument("--baseline", type=float, default=5.0, metavar="S",
                   help="seconds of canary telemetry before the deploy, the baseline (default 5)")
    d.add_argument("--timeout", type=float, default=300.0, metavar="S",
                   help="per phase: download + verification + shadow test (default 300)")
    d.add_argument("--deployment", default="", metavar="ID", help="deployment id (default: VERSION-TIMESTAMP)")
    d.add_argument("--version", default="", help="the bundle's version when its header cannot tell it")
    g = d.add_argument_group("shadow test on each device (before promotion)")
    g.add_argument("--shadow-frames", type=int, default=200, metavar="N", help="frames to compare (0: no test)")
    g.add_argument("--min-agreement", type=float, default=0.95, metavar="F", help="top-1 agreement (default 0.95)")
    g.add_argument("--max-shadow-p95-ms", type=float, metavar="MS", help="candidate latency p95 ceiling")
    g.add_argument("--shadow-fraction", type=float, metavar="F", help="share of frames run on the candidate too")
    g.add_argument("--max-output-drift", type=float, metavar="PSI",
                   help="PSI between the two models' top-1 class histograms, at most")
    lim = d.add_argument_group("limits during the soak (regression → automatic rollback)")
    lim.add_argument("--max-errors", type=int, default=0, help="new inference errors per canary (default 0)")
    lim.add_argument("--max-p95-ratio", type=float, default=1.5, help="latency p95 / baseline p95 (default 1.5)")
    lim.add_argument("--max-p95-ms", type=float, help="absolute latency p95 ceiling")
    lim.add_argument("--max-drift", choices=("warn", "alert", "off"), default="alert",
                     help="drift state that counts as a regression (default alert)")
    lim.add_argument("--min-metric", action="append", default=[], metavar="NAME=RATIO",
                     help="app metric floor vs baseline, e.g. detection_rate=0.8 (repeatable)")
    lim.add_argument("--max-metric", action="append", default=[], metavar="NAME=RATIO",
                     help="app metric ceiling vs baseline, e.g. false_alarm_rate=1.5 (repeatable)")
    d.set_defaults(func=_deploy)
    r = fsub.add_parser("rollback", help="roll devices back to their previous model version",
                        description="Send 'rollback' to the devices (default: the whole fleet): each switches to the "
                        "previous version it keeps, without restarting the app. --to names it (a check: devices "
                        "keep one previous version).")
    common(r, shared=False)
    r.add_argument("--devices", nargs="+", default=[], metavar="ID", help="only these devices")
    r.add_argument("--to", metavar="VERSION", help="the version to go back to (must be the previous one)")
    r.add_argument("--timeout", type=float, default=60.0, metavar="S", help="wait for answers (default 60)")
    r.set_defaults(func=_rollback)


def _metric_limits(items: list[str], flag: str) -> dict[str, float]:
    out = {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            out[name] = float(value)
        except ValueError:
            raise ConfigError(f"{flag} {item!r}: use NAME=RATIO, e.g. detection_rate=0.8") from None
        if not name or out[name] <= 0:
            raise ConfigError(f"{flag} {item!r}: NAME must be given and RATIO must be > 0")
    return out


def _deploy(args: argparse.Namespace, config: Any) -> int:
    from sdk.rollout.canary import Limits, parse_canary
    from sdk.rollout.deploy import DeploySpec, FleetController

    parse_canary(args.canary)  # a bad flag fails before anything connects

    shadow = {"frames": args.shadow_frames, "min_agreement": args.min_agreement}
    if args.max_shadow_p95_ms is not None:
        shadow["max_p95_ms"] = args.max_shadow_p95_ms
    if args.shadow_fraction is not None:
        shadow["fraction"] = args.shadow_fraction
    if args.max_output_drift is not None:
        shadow["max_drift"] = args.max_output_drift
    limits = Limits(max_errors=args.max_errors, max_p95_ratio=args.max_p95_ratio, max_p95_ms=args.max_p95_ms,
                    max_drift=args.max_drift, min_metric_ratio=_metric_limits(args.min_metric, "--min-metric"),
                    max_metric_ratio=_metric_limits(args.max_metric, "--max-metric"))
    spec = DeploySpec(args.bundle, devices=args.devices, canary=args.canary, url=args.url, soak_s=args.soak,
                      baseline_s=args.baseline, step_timeout_s=args.timeout, shadow=shadow, limits=limits,
                      deployment=args.deployment, version=args.version)
    with FleetController(_settings(args, config), progress=print, bars=True) as fc:
        report = fc.deploy(spec)
    print(json.dumps(report, default=str))
    return 0 if report["phase"] == "done" else 3


def _rollback(args: argparse.Namespace, config: Any) -> int:
    from sdk.rollout.deploy import FleetController

    with FleetController(_settings(args, config), progress=print, bars=True) as fc:
        report = fc.rollback(args.devices, to=args.to, timeout=args.timeout)
    print(json.dumps(report, default=str))
    return 0 if all(s == "rolled_back" for s in report["steps"].values()) else 3
