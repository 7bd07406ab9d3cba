"""The ``ember`` command. Each subcommand is a module in this package with a ``register`` function.

A module here defines ``register(subparsers) -> None``, which adds its parser(s) and sets
``func`` (called as ``func(args, config) -> int``) with ``parser.set_defaults``.
New subcommands need no edit to this file.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from sdk import __version__
from sdk.config import load_config, setup_logging
from sdk.device import set_device_class
from sdk.errors import EmberError

# Modules whose ``register`` adds subcommands to another command's parser (not to ``ember`` itself).
NESTED = {"compress_search"}  # registered by sdk/cli/compress.py under ``ember compress``


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ember",
        description="Ember: run deep learning on small devices (streams, precision tiers, drift telemetry, C export).",
        epilog="Run 'ember COMMAND --help' for the options of a command. "
        "Settings come from defaults < config files < EMBER_* variables < flags (see README, Configuration).",
    )
    parser.add_argument("--version", action="version", version=f"ember {__version__}")
    parser.add_argument("--config", metavar="FILE", help="TOML config file (also EMBER_CONFIG)")
    parser.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING (default), ERROR")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in NESTED:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        config = load_config(args.config, overrides={"log.level": args.log_level})
        setup_logging(config.get_path("log.level", "WARNING"))
        set_device_class(config.get_path("device.class"))
        return int(args.func(args, config) or 0)
    except EmberError as e:
        print(f"ember {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ember {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
