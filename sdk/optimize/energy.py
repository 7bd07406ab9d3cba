"""Energy estimates: latency × a device power figure from an editable TOML table, or RAPL.

The table ships as ``sdk/optimize/power_table.toml``; pass another path (CLI ``--power-table``,
config ``optimize.power_table``) to use your own measurements. On Intel/AMD Linux machines
whose RAPL counter (``/sys/class/powercap/intel-rapl:0/energy_uj``) is readable, energy is
measured instead (package energy over the timed runs, so it includes background load).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdk.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULT_TABLE = Path(__file__).with_name("power_table.toml")
RAPL = Path("/sys/class/powercap/intel-rapl:0/energy_uj")


@dataclass(frozen=True)
class PowerFigure:
    device: str
    watts: float
    source: str  # "table:<entry>" or "default"


def load_power_table(path: str | Path | None = None) -> dict[str, Any]:
    p = Path(path) if path else DEFAULT_TABLE
    try:
        table = tomllib.loads(p.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{p}: cannot read the power table ({e}); see {DEFAULT_TABLE} for the format") from None
    for name, entry in table.get("devices", {}).items():
        if not isinstance(entry.get("watts"), (int, float)) or entry["watts"] <= 0:
            raise ConfigError(f"{p}: devices.{name}.watts must be a positive number")
    return table


def power_for(device_class: str, table_path: str | Path | None = None) -> PowerFigure:
    """The power figure for ``device_class`` (by entry name or alias, else the table's default)."""
    table = load_power_table(table_path)
    for name, entry in table.get("devices", {}).items():
        if device_class == name or device_class in entry.get("aliases", []):
            return PowerFigure(device_class, float(entry["watts"]), f"table:{name}")
    return PowerFigure(device_class, float(table.get("default", {}).get("watts", 5.0)), "default")


def rapl_readable() -> bool:
    try:
        int(RAPL.read_text())
        return True
    except (OSError, ValueError):
        return False


def measure_rapl_mj(fn: Callable[[], Any], runs: int) -> float | None:
    """Millijoules per call of ``fn`` from the RAPL package counter, or None when unreadable."""
    if not rapl_readable():
        return None
    start = int(RAPL.read_text())
    t0 = time.perf_counter()
    for _ in range(runs):
        fn()
    end = int(RAPL.read_text())
    if end < start or time.perf_counter() - t0 < 0.05:  # counter wrapped, or too short to resolve
        return None
    return (end - start) / 1e3 / runs


def energy_mj(latency_ms: float, device_class: str, table_path: str | Path | None = None) -> tuple[float, str]:
    """(estimated mJ per inference, source of the power figure)."""
    fig = power_for(device_class, table_path)
    return latency_ms * fig.watts, fig.source
