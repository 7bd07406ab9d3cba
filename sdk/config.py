"""Configuration: one typed schema, one TOML format, environment variables and flags, merged in a fixed order.

Precedence, lowest to highest:

1. each section's declared defaults
2. ``/etc/ember/config.toml``
3. ``~/.config/ember/config.toml`` (``$XDG_CONFIG_HOME`` respected)
4. ``./ember.toml`` in the working directory
5. the file named by ``--config`` or ``EMBER_CONFIG``
6. ``EMBER_<SECTION>_<KEY>`` environment variables, e.g. ``EMBER_TELEMETRY_BROKER=mqtt://host``
   (values parsed as TOML values: ``8`` → int, ``true`` → bool; otherwise kept as strings)
7. command-line flags (passed as ``overrides``)

**The schema.** Every section is declared once, as a dataclass whose fields are its keys, with their
types and defaults. Values are checked at every layer: an unknown section or key is a
``ConfigError`` listing the valid ones (naming the file or variable), and so is a value of the wrong
type or outside a field's ``choices``. Declaring a section is the only step to add one; the
environment variables, defaults and checks follow from it::

    from dataclasses import dataclass, field
    from sdk.config import choices, config_section

    @config_section("speech")                 # the [speech] table, EMBER_SPEECH_<KEY>
    @dataclass
    class SpeechSettings:
        vad_gate_db: float = -45.0
        hop_ms: int = 500
        wake_word: str = "marvin"
        mode: str = field(default="stream", metadata=choices("stream", "push_to_talk"))

    cfg = load_config()
    cfg.settings("speech").hop_ms             # a SpeechSettings instance

Built-in sections live here (``log``, ``pipeline``, ``device``, ``models``, ``optimize``), in
``sdk/telemetry/settings.py`` (``telemetry``) and ``sdk/rollout/settings.py`` (``rollout``). An app
declares its section in a module that its package ``apps/<name>/__init__.py`` imports; installed apps
are imported when the schema is first needed, so their sections are known to every ``ember`` command.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import logging
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sdk.errors import ConfigError
from sdk.vocab import CALIBRATION_METHODS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV_PREFIX = "EMBER_"
T = TypeVar("T")
SECTIONS: dict[str, type] = {}
_ELSEWHERE = ("sdk.telemetry.settings", "sdk.rollout.settings")  # modules that declare built-in sections
_loaded = False


def choices(*allowed: Any) -> dict[str, Any]:
    """``field(metadata=choices(...))``: the value must be one of ``allowed``."""
    return {"choices": allowed}


def config_section(name: str) -> Callable[[type[T]], type[T]]:
    """Declare the ``[name]`` section (a dataclass whose fields, all with defaults, are the keys).
    A field's ``metadata`` may hold ``choices`` and ``key`` (the key's name when it is not a valid
    Python name, e.g. ``class``)."""

    def register(cls: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"config section {name!r}: {cls.__name__} must be a dataclass")
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise TypeError(f"config section {name!r}: fields without a default: {missing}")
        SECTIONS[name] = cls
        return cls

    return register


def sections() -> dict[str, type]:
    """Every declared section (built-ins, then the installed apps')."""
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _ELSEWHERE:
            importlib.import_module(module)
        from sdk.apps import available_apps

        for app in available_apps():
            importlib.import_module(f"apps.{app}")
    return SECTIONS


def _fields(name: str) -> dict[str, dataclasses.Field[Any]]:
    return {f.metadata.get("key", f.name): f for f in dataclasses.fields(sections()[name])}


def defaults() -> dict[str, dict[str, Any]]:
    """``{section: {key: default}}`` from the declarations."""
    out: dict[str, dict[str, Any]] = {}
    for name, cls in sections().items():
        inst = cls()
        out[name] = {key: copy.deepcopy(getattr(inst, f.name)) for key, f in _fields(name).items()}
    return out


# ---- types ------------------------------------------------------------------------------------------
def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _matches(value: Any, tp: Any) -> tuple[bool, Any]:
    """(ok, value converted to ``tp``) for the types config fields use."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for t in args:
            ok, v = _matches(value, t)
            if ok:
                return True, v
        return False, value
    if tp is type(None):
        return value is None, value
    if origin is list:
        if not isinstance(value, list):
            return False, value
        item = args[0] if args else Any
        checked = [_matches(v, item) for v in value]
        return all(ok for ok, _ in checked), [v for _, v in checked]
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    return isinstance(value, tp), value


def check_section(name: str, values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check one section's ``values``; returns them converted (int → float where declared)."""
    known = sections()
    if name not in known:
        raise ConfigError(f"{where}: unknown section [{name}]; valid sections: {', '.join(sorted(known))}")
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: [{name}] must be a table, not {values!r:.60}")
    spec = _fields(name)
    hints = typing.get_type_hints(known[name])
    out = {}
    for key, value in values.items():
        if key not in spec:
            raise ConfigError(f"{where}: unknown key {name}.{key}; valid keys of [{name}]: {', '.join(spec)}")
        f = spec[key]
        ok, value = _matches(value, hints[f.name])
        if not ok:
            raise ConfigError(f"{where}: {name}.{key} must be {_type_name(hints[f.name])}, got {value!r:.60}")
        allowed = f.metadata.get("choices")
        if allowed and value not in allowed:
            raise ConfigError(f"{where}: {name}.{key} = {value!r} is not one of {', '.join(map(str, allowed))}")
        out[key] = value
    return out


def check(data: Mapping[str, Any], where: str) -> dict[str, dict[str, Any]]:
    """Check a whole ``{section: {key: value}}`` layer (a file, the environment, the flags)."""
    return {name: check_section(name, values, where) for name, values in data.items()}


# ---- the built-in sections --------------------------------------------------------------------------
@config_section("log")
@dataclass
class LogSettings:
    level: str = "WARNING"  # DEBUG, INFO, WARNING, ERROR or CRITICAL (checked by setup_logging)


@config_section("pipeline")
@dataclass
class PipelineSettings:
    queue_size: int = 8
    policy: str = field(default="auto", metadata=choices("auto", "block", "drop_oldest"))


@config_section("device")
@dataclass
class DeviceSettings:
    # the device class that keys per-device metrics in manifests ("auto": detect; sdk.device.device_class)
    device_class: str = field(default="auto", metadata={"key": "class"})


@config_section("models")
@dataclass
class ModelsSettings:
    dir: str = "models"  # a model given by name (not a path) is looked up here: models/<name>/manifest.json
    budget_ms: float | None = None
    threads: int = 1
    min_dwell_s: float = 5.0
    rules: list[Any] = field(default_factory=list)  # "COND -> ACTION" strings or {when, action} tables


@config_section("optimize")
@dataclass
class OptimizeSettings:
    method: str = field(default="minmax", metadata=choices(*CALIBRATION_METHODS))
    max_drop: float = 1.0
    power_table: str = ""


# ---- loading ----------------------------------------------------------------------------------------
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


def env_overrides(env: Mapping[str, str], names: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """``EMBER_TELEMETRY_SPOOL_MAX_BYTES=1000`` → ``{"telemetry": {"spool_max_bytes": 1000}}``. Variables
    whose name starts with no section's are left alone (``EMBER_CONFIG`` and others of their own)."""
    names = set(sections()) if names is None else names
    out: dict[str, dict[str, Any]] = {}
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX) or var == "EMBER_CONFIG":
            continue
        rest = var[len(ENV_PREFIX):].lower()
        section = next((s for s in sorted(names, key=len, reverse=True) if rest.startswith(s + "_")), None)
        if section is not None:
            key, where = rest[len(section) + 1:], f"environment variable {var}"
            try:
                value = check_section(section, {key: _parse_value(raw)}, where)[key]
            except ConfigError:  # e.g. EMBER_TELEMETRY_DEVICE_ID=007 for a string key: keep the text
                value = check_section(section, {key: raw}, where)[key]
            out.setdefault(section, {})[key] = value
    return out


def _nest(overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    data: dict[str, Any] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        if "." in key:
            section, k = key.split(".", 1)
            data = merge(data, {section: {k: value}})
        else:
            data = merge(data, {key: value})
    return data


class Config(dict[str, Any]):
    """Nested settings with dotted lookup: ``cfg.get_path("telemetry.broker")``; ``cfg.settings("optimize")``
    is the section as its declared dataclass."""

    def get_path(self, dotted: str, default: Any = None) -> Any:
        node: Any = self
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.get(name, {}))

    def settings(self, name: str) -> Any:
        """The ``[name]`` section as an instance of its declared dataclass."""
        values = check_section(name, self.get(name, {}), "config")
        return sections()[name](**{_fields(name)[k].name: v for k, v in values.items()})


def load_config(
    path: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Merge defaults, files, environment and ``overrides`` (``{"telemetry.broker": "..."}`` or nested),
    checking each layer against the schema."""
    env = os.environ if env is None else env
    data: dict[str, Any] = defaults()
    for f in config_files(path, env):
        if f.is_file():
            data = merge(data, check(read_toml(f), str(f)))
    data = merge(data, env_overrides(env))
    data = merge(data, check(_nest(overrides or {}), "command-line flags"))
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
