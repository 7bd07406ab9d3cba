"""Finding the reference apps. An app is a package ``apps.<name>`` that exposes ``APP`` with
``run(args, config) -> int`` and ``evaluate(data_dir, **opts) -> dict``."""

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
    return [name for name in KNOWN_APPS if importlib.util.find_spec(f"apps.{name}") is not None]


def load_app(name: str) -> Any:
    """Return ``apps.<name>.APP`` or raise a clear error when the app is not part of this version."""
    if name not in KNOWN_APPS:
        raise EmberError(f"unknown app {name!r}: the reference apps are {', '.join(KNOWN_APPS)}")
    if importlib.util.find_spec(f"apps.{name}") is None:
        have = ", ".join(available_apps()) or "none yet"
        raise EmberError(
            f"the {name} app ({KNOWN_APPS[name]}) is not in this version of Ember "
            f"(available apps: {have}); meanwhile 'ember demo' shows the SDK on generated inputs"
        )
    module = importlib.import_module(f"apps.{name}")
    return module.APP
