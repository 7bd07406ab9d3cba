"""``ember run APP`` and ``ember eval APP --data DIR``: each app adds its own options."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sdk.apps import KNOWN_APPS, load_app, try_load_app
from sdk.util.jsonutil import dumps
from sdk.vocab import BACKENDS, tier_arg


def _common_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", metavar="URI", help="source URI, e.g. v4l2:///dev/video0, mic://default, "
                   "file://clip.mp4, wfdb://rec/100 (default: the app's bundled sample)")
    p.add_argument("--model", metavar="DIR", help="model folder (default: the app's shipped model)")
    p.add_argument("--tier", type=tier_arg, help="pin a tier (fp32, int8, ...); default: the model manager chooses")
    p.add_argument("--backend", choices=BACKENDS, help="pin a backend")
    p.add_argument("--jsonl", nargs="?", const="-", metavar="FILE",
                   help="write results as JSON lines to FILE (or stdout when no FILE is given)")


def _common_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="DIR", required=True, help="labelled data set folder")
    p.add_argument("--model", metavar="DIR", help="model folder (default: the app's shipped model)")
    p.add_argument("--tier", type=tier_arg, help="tier to evaluate (default: fp32)")
    p.add_argument("--backend", choices=BACKENDS, help="backend (default: onnxruntime)")
    p.add_argument("--plot", metavar="FILE", help="write the app's evaluation plot (PNG)")
    p.add_argument("--out", metavar="FILE", help="also write the JSON result to FILE")


def register(sub: Any) -> None:
    apps = ", ".join(f"{k} ({v})" for k, v in KNOWN_APPS.items())
    run = sub.add_parser("run", help="run a reference app on a live or file source",
                         description=f"Run a reference app. Apps: {apps}. 'ember run APP --help' lists its options.")
    ev = sub.add_parser("eval", help="evaluate a reference app on a labelled data set",
                        description="Evaluate an app on DIR and print its metrics as one JSON object. "
                        "'ember eval APP --help' lists its options.")
    run_sub = run.add_subparsers(dest="app", metavar="APP", required=True)
    eval_sub = ev.add_subparsers(dest="app", metavar="APP", required=True)
    for name, what in KNOWN_APPS.items():
        app = try_load_app(name)
        p = run_sub.add_parser(name, help=what, description=f"ember run {name}: {what}.")
        _common_run(p)
        e = eval_sub.add_parser(name, help=what, description=f"ember eval {name}: {what}, metrics as JSON.")
        _common_eval(e)
        if app is not None:
            app.add_run_arguments(p)
            app.add_eval_arguments(e)
            if hasattr(app, "register_commands"):
                app.register_commands(sub)
        p.set_defaults(func=_run)
        e.set_defaults(func=_eval)


def _run(args: argparse.Namespace, config: Any) -> int:
    return int(load_app(args.app).run(args, config) or 0)


def _eval(args: argparse.Namespace, config: Any) -> int:
    result = load_app(args.app).evaluate(args)
    text = dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0



