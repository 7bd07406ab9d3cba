"""``ember run APP`` and ``ember eval APP --data DIR``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from sdk.apps import KNOWN_APPS, load_app


def register(sub: Any) -> None:
    apps = ", ".join(f"{k} ({v})" for k, v in KNOWN_APPS.items())
    p = sub.add_parser("run", help="run a reference app on a live or file source",
                       description=f"Run a reference app. Apps: {apps}.")
    p.add_argument("app", help="vision, speech or health")
    p.add_argument("--source", help="source URI, e.g. v4l2:///dev/video0, mic://default, file://clip.mp4")
    p.add_argument("--data", metavar="DIR", help="use real data from DIR instead of the bundled sample")
    p.set_defaults(func=_run)
    e = sub.add_parser("eval", help="evaluate a reference app on a labelled data set",
                       description="Evaluate an app's model on DIR and print metrics as JSON.")
    e.add_argument("app", help="vision, speech or health")
    e.add_argument("--data", metavar="DIR", required=True, help="data set folder (same layout as ../shared/data)")
    e.set_defaults(func=_eval)


def _run(args: argparse.Namespace, config: Any) -> int:
    return int(load_app(args.app).run(args, config) or 0)


def _eval(args: argparse.Namespace, config: Any) -> int:
    print(json.dumps(load_app(args.app).evaluate(args.data), indent=2))
    return 0
