"""``ember devices``: what this machine offers (cameras, microphones, serial ports, runtimes, power)."""

from __future__ import annotations

import argparse
from typing import Any

from sdk.util.jsonutil import dumps


def register(sub: Any) -> None:
    p = sub.add_parser(
        "devices", help="list cameras, microphones, serial ports, runtimes, battery and thermal sensors",
        description="List what this machine offers for Ember: cameras (/dev/video*, csi:// support), "
        "microphones (PortAudio), serial ports, inference runtimes (ONNX Runtime providers, LiteRT, "
        "tinygrad devices) and battery/thermal readings. Each entry shows the source URI to use.")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=_devices)


def _devices(args: argparse.Namespace, config: Any) -> int:
    from sdk.sources.discover import discover, format_report

    report = discover()
    print(dumps(report, indent=2) if args.json else format_report(report))
    return 0
