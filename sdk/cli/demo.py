"""``ember demo``: the SDK end to end on inputs it makes itself."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sdk.apps import available_apps, load_app
from sdk.util.jsonutil import dumps


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo", help="run Ember end to end on inputs it generates (no hardware, no downloads)",
        description="Generate a clip (a ball over a panning public-domain photo, light fading half-way), "
        "make fp32/int8 tiers of the shipped demo model, and run a pipeline whose model manager switches "
        "tiers under a scripted battery drain while telemetry measures drift and spools it to a local "
        "file. Prints what it found, the tier switches, drift and the spooled telemetry.")
    p.add_argument("--out", default="demo-out", metavar="DIR", help="where to write the clip, model, results "
                   "and telemetry spool (default: demo-out)")
    p.add_argument("--data", metavar="DIR", help="use real images or a video instead of the generated clip "
                   "(a folder of images, a glob, or a video file); accuracy is then not scored")
    p.add_argument("--frames", type=int, default=1200, help="length of the generated clip (default 1200 = 40 s at 30 fps)")
    p.add_argument("--json", action="store_true", help="print the result as JSON instead of text")
    p.add_argument("--apps", default="all", metavar="LIST",
                   help="reference apps to show after the SDK part: all (default), none, or a comma list "
                   "such as speech,health; each runs on a short recording shipped with it")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace, config: Any) -> int:
    from sdk.demo import describe, run_demo

    say = (lambda _msg: None) if args.json else (lambda msg: print(f"• {msg}", flush=True))
    result = run_demo(args.out, data=args.data, frames=args.frames, config=config, progress=say)
    if not args.json:
        print(describe(result))
    apps: dict[str, list[str]] = {}
    for name in _apps(args.apps):
        app = load_app(name)
        if hasattr(app, "demo"):
            say(f"{name} app")
            apps[name] = list(app.demo(Path(args.out) / name, config, say))
            if not args.json:
                print("\n".join(apps[name]))
    if args.json:   # one JSON object on stdout: the SDK part plus each app's lines
        print(dumps({**asdict(result), "apps": apps}, indent=2))
    return 0


def _apps(spec: str) -> list[str]:
    if spec == "none":
        return []
    if spec == "all":
        return available_apps()
    names = [s.strip() for s in spec.split(",") if s.strip()]
    for n in names:
        load_app(n)  # a clear error for an unknown or missing app
    return names
