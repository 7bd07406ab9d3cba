"""Configuration: one TOML format, environment variables and flags, merged in a fixed order.

Precedence, lowest to highest:

1. built-in defaults (``DEFAULTS``)
2. ``/etc/ember/config.toml``
3. ``~/.config/ember/config.toml`` (``$XDG_CONFIG_HOME`` respected)
4. ``./ember.toml`` in the working directory
5. the file named by ``--config`` or ``EMBER_CONFIG``
6. ``EMBER_<SECTION>_<KEY>`` environment variables, e.g. ``EMBER_TELEMETRY_BROKER=mqtt://host``
7. command-line flags (passed as ``overrides``)

Keys are ``section.key``; values from the environment are parsed as TOML values
(``8`` → int, ``true`` → bool) and kept as strings otherwise.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sdk.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULTS: dict[str, dict[str, Any]] = {
    "log": {"level": "WARNING"},
    "pipeline": {"queue_size": 8, "policy": "auto"},
    "device": {"class": "auto"},
    "models": {"dir": "models", "threads": 1},
    "telemetry": {
        "broker": "",
        "fleet": "default",
        "device_id": "",
        "spool": "ember-telemetry.spool",
        "spool_max_bytes": 64 * 1024 * 1024,
        "telemetry_qos": 0,
        "interval_s": 1.0,
    },
}

ENV_PREFIX = "EMBER_"


def config_files(explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> list[Path]:
    """The files read, lowest precedence first (missing ones are skipped when loading)."""
    env = os.environ if env is None else env
    xdg = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    files = [Path("/etc/ember/config.toml"), xdg / "ember" / "config.toml", Path("ember.toml")]
    chosen = explicit or env.get("EMBER_CONFIG")
    if chosen:
        p = Path(chosen)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist (given by --config or EMBER_CONFIG)")
        files.append(p)
    return files


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``extra`` into a copy of ``base``."""
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def env_overrides(env: Mapping[str, str], sections: set[str]) -> dict[str, dict[str, Any]]:
    """``EMBER_TELEMETRY_SPOOL_MAX_BYTES=1000`` → ``{"telemetry": {"spool_max_bytes": 1000}}``."""
    out: dict[str, dict[str, Any]] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == "EMBER_CONFIG":
            continue
        rest = name[len(ENV_PREFIX):].lower()
        section = next((s for s in sorted(sections, key=len, reverse=True) if rest.startswith(s + "_")), None)
        if section is None:
            continue
        out.setdefault(section, {})[rest[len(section) + 1:]] = _parse_value(raw)
    return out


class Config(dict[str, Any]):
    """Nested settings with dotted lookup: ``cfg.get_path("telemetry.broker")``."""

    def get_path(self, dotted: str, default: Any = None) -> Any:
        node: Any = self
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.get(name, {}))


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Merge defaults, files, environment and ``overrides`` (``{"telemetry.broker": "..."}`` or nested)."""
    env = os.environ if env is None else env
    data: dict[str, Any] = copy.deepcopy(DEFAULTS)
    for f in config_files(path, env):
        if f.is_file():
            loaded = read_toml(f)
            for section in set(DEFAULTS) & set(loaded):
                if not isinstance(loaded[section], Mapping):
                    raise ConfigError(f"{f}: [{section}] must be a table, not {loaded[section]!r}")
            data = merge(data, loaded)
    data = merge(data, env_overrides(env, set(data)))
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if "." in key:
            section, k = key.split(".", 1)
            data = merge(data, {section: {k: value}})
        else:
            data = merge(data, {key: value})
    return Config(data)


def setup_logging(level: str | int = "WARNING") -> None:
    """Configure the ``ember`` loggers once; ``level`` is a name like ``INFO`` or a number."""
    if isinstance(level, str):
        value = logging.getLevelName(level.upper())
        if not isinstance(value, int):
            raise ConfigError(f"unknown log level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        level = value
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("sdk").setLevel(level)
