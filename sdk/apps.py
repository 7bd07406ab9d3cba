"""Finding the reference apps.

An app is a package ``apps.<name>`` that exposes ``APP``, an object with:

- ``add_run_arguments(parser)`` and ``run(args, config) -> int`` for ``ember run <name>``
  (the common options ``--source``, ``--model``, ``--tier``, ``--backend``, ``--jsonl`` are added
  by Ember before the app's own);
- ``add_eval_arguments(parser)`` and ``evaluate(args) -> dict`` for ``ember eval <name> --data DIR``
  (common options: ``--data``, ``--model``, ``--tier``, ``--backend``, ``--plot``, ``--out``);
- optionally ``register_commands(subparsers)`` for commands of its own (``ember speech enroll``);
- optionally ``demo(out_dir, config, say) -> list[str]``: the app's part of ``ember demo``, lines to print;
- optionally its own config section ``[<name>]``: a dataclass declared with ``sdk.config.config_section``
  in a module the package imports (see ``sdk/config.py``); ``config.settings("<name>")`` reads it.

Apps import heavy modules lazily: every ``ember`` command builds the parsers of all apps.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from sdk.errors import EmberError

KNOWN_APPS = {
    "vision": "object detection (people and vehicles)",
    "speech": "keyword spotting (12 Speech Commands classes)",
    "health": "ECG arrhythmia detection (MIT-BIH)",
}


def available_apps() -> list[str]:
    return [name for name in KNOWN_APPS if _find(name)]


def _find(name: str) -> bool:
    try:
        return importlib.util.find_spec(f"apps.{name}") is not None
    except ModuleNotFoundError:  # no apps package at all
        return False


def load_app(name: str) -> Any:
    """Return ``apps.<name>.APP`` or raise a clear error when the app is not part of this version."""
    if name not in KNOWN_APPS:
        raise EmberError(f"unknown app {name!r}: the reference apps are {', '.join(KNOWN_APPS)}")
    if not _find(name):
        have = ", ".join(available_apps()) or "none yet"
        raise EmberError(
            f"the {name} app ({KNOWN_APPS[name]}) is not in this version of Ember "
            f"(available apps: {have}); meanwhile 'ember demo' shows the SDK on generated inputs"
        )
    module = importlib.import_module(f"apps.{name}")
    return module.APP


def try_load_app(name: str) -> Any | None:
    """``load_app`` or None when the app is not installed."""
    return load_app(name) if _find(name) else None
