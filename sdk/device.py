"""Device class and device state: CPU load, memory, battery, temperature, Jetson power mode.

Each reading comes from a *reader*: a function returning a dict of some ``DeviceState`` fields.
Readers are injectable, so tests and demos use ``sdk.testing.ScriptedDevice`` (a battery that
drains, a load spike, heat) on a ``sdk.testing.FakeClock``. A reading that is not available is ``None``, never an error.

    dev = Device()                      # real readers (psutil, /sys, nvpmodel)
    state = dev.snapshot()              # DeviceState(cpu_percent=..., battery_percent=None, ...)
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Reader = Callable[[], dict[str, Any]]
Clock = Callable[[], float]

_ARM_PARTS = {"0xd03": "cortex-a53", "0xd04": "cortex-a35", "0xd05": "cortex-a55", "0xd07": "cortex-a57",
              "0xd08": "cortex-a72", "0xd09": "cortex-a73", "0xd0a": "cortex-a75", "0xd0b": "cortex-a76",
              "0xd0d": "cortex-a77", "0xd41": "cortex-a78", "0xd42": "cortex-a78ae", "0xd44": "cortex-x1",
              "0xd46": "cortex-a510", "0xd47": "cortex-a710", "0xd4b": "cortex-a78c"}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _read(path: str | Path) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return None


_configured_class: str | None = None


def set_device_class(name: str | None) -> None:
    """Use ``name`` as this process's device class (the config key ``device.class``; ``"auto"`` or
    None: detect). The ``ember`` commands call it with the loaded configuration."""
    global _configured_class
    _configured_class = None if name in (None, "", "auto") else name


def device_class(override: str | None = None) -> str:
    """Name the device class for per-device metrics, e.g. ``x86_64-avx512``,
    ``aarch64-cortex-a76``, ``jetson-orin-nano``. ``override`` wins, then ``EMBER_DEVICE_CLASS``, then
    the configured ``device.class`` (``set_device_class``); ``"auto"`` means detect."""
    chosen = override or os.environ.get("EMBER_DEVICE_CLASS") or _configured_class
    if chosen and chosen != "auto":
        return chosen
    model = _read("/proc/device-tree/model") or ""
    if "jetson" in model.lower():
        m = re.search(r"jetson[\w -]*?(orin nano|orin nx|agx orin|xavier nx|agx xavier|nano|tx2)", model.lower())
        return "jetson-" + _slug(m.group(1) if m else model.lower().split("jetson", 1)[1] or "unknown")
    arch = platform.machine().lower() or "unknown"
    cpuinfo = _read("/proc/cpuinfo") or ""
    if arch in ("x86_64", "amd64"):
        flags = set(re.findall(r"\b(avx512f|avx2|avx)\b", cpuinfo))
        for name in ("avx512f", "avx2", "avx"):
            if name in flags:
                return f"x86_64-{name.replace('avx512f', 'avx512')}"
        return "x86_64"
    if arch in ("aarch64", "arm64", "armv7l", "armv6l"):
        parts = re.findall(r"CPU part\s*:\s*(0x[0-9a-f]+)", cpuinfo)
        # big.LITTLE: the highest part number is the big core
        names = [_ARM_PARTS.get(p) for p in sorted(set(parts), reverse=True)]
        core = next((n for n in names if n), None)
        return f"{arch}-{core}" if core else arch
    return arch


@dataclass(frozen=True)
class DeviceState:
    """One snapshot; any field may be ``None`` (not available on this device)."""

    timestamp: float
    cpu_percent: float | None = None
    mem_percent: float | None = None
    mem_available_bytes: int | None = None
    battery_percent: float | None = None
    charging: bool | None = None
    temperature_c: float | None = None
    power_mode: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


STATE_FIELDS = tuple(f.name for f in fields(DeviceState) if f.name != "timestamp")


# ---- real readers ---------------------------------------------------------------------------------
def cpu_reader() -> Reader:
    """CPU load in percent since the previous call (psutil, primed on creation)."""
    import psutil

    psutil.cpu_percent(None)

    def read() -> dict[str, Any]:
        return {"cpu_percent": float(psutil.cpu_percent(None))}

    return read


def memory_reader() -> dict[str, Any]:
    import psutil

    vm = psutil.virtual_memory()
    return {"mem_percent": float(vm.percent), "mem_available_bytes": int(vm.available)}


def battery_reader(sysfs: str | Path = "/sys/class/power_supply") -> dict[str, Any]:
    """psutil's battery, else the first ``type == Battery`` in ``sysfs``."""
    import psutil

    bat = psutil.sensors_battery() if hasattr(psutil, "sensors_battery") else None
    if bat is not None:
        return {"battery_percent": float(bat.percent), "charging": bool(bat.power_plugged)}
    root = Path(sysfs)
    for supply in sorted(root.glob("*")) if root.is_dir() else []:
        if (_read(supply / "type") or "").lower() != "battery":
            continue
        cap = _read(supply / "capacity")
        status = (_read(supply / "status") or "").lower()
        return {"battery_percent": float(cap) if cap and cap.isdigit() else None,
                "charging": status in ("charging", "full") if status else None}
    return {}


def temperature_reader(sysfs: str | Path = "/sys/class/thermal") -> dict[str, Any]:
    """Hottest ``thermal_zone*/temp`` (millidegrees), else psutil's hottest sensor."""
    temps = []
    root = Path(sysfs)
    for zone in root.glob("thermal_zone*") if root.is_dir() else []:
        raw = _read(zone / "temp")
        if raw and raw.lstrip("-").isdigit():
            temps.append(int(raw) / 1000.0)
    if not temps:
        import psutil

        sensors = psutil.sensors_temperatures() if hasattr(psutil, "sensors_temperatures") else {}
        temps = [t.current for entries in sensors.values() for t in entries if t.current is not None]
    return {"temperature_c": max(temps)} if temps else {}


def jetson_power_mode_reader(conf: str | Path = "/etc/nvpmodel.conf") -> dict[str, Any]:
    """Jetson power mode name from ``nvpmodel -q`` (or the conf file's default); ``{}`` elsewhere."""
    if shutil.which("nvpmodel"):
        try:
            out = subprocess.run(["nvpmodel", "-q"], check=False, capture_output=True, text=True, timeout=2).stdout
            m = re.search(r"NV Power Mode:\s*(\S+)", out)
            if m:
                return {"power_mode": m.group(1)}
        except (OSError, subprocess.SubprocessError):
            pass
    text = _read(conf)
    if text:
        m = re.search(r"<\s*PM_CONFIG\s+DEFAULT\s*=\s*(\d+)\s*>", text)
        if m:
            name = re.search(rf"<\s*POWER_MODEL\s+ID\s*=\s*{m.group(1)}\s+NAME\s*=\s*(\S+?)\s*>", text)
            return {"power_mode": name.group(1) if name else m.group(1)}
    return {}


def default_readers() -> list[Reader]:
    return [cpu_reader(), memory_reader, battery_reader, temperature_reader, jetson_power_mode_reader]


class Device:
    """Takes ``DeviceState`` snapshots from ``readers`` (default: the real ones)."""

    def __init__(self, readers: Iterable[Reader] | None = None, clock: Clock = time.monotonic) -> None:
        self.readers = list(readers) if readers is not None else default_readers()
        self.clock = clock
        self._warned: set[int] = set()

    def snapshot(self) -> DeviceState:
        values: dict[str, Any] = {}
        for i, read in enumerate(self.readers):
            try:
                values.update({k: v for k, v in read().items() if k in STATE_FIELDS})
            except Exception as e:  # noqa: BLE001 - a failing reader means "not available"
                if i not in self._warned:
                    self._warned.add(i)
                    log.warning("device reader %r failed (%s); its readings are None", read, e)
        return DeviceState(timestamp=self.clock(), **values)

    __call__ = snapshot


def __getattr__(name: str) -> Any:
    """The test doubles moved to ``sdk.testing``; ``from sdk.device import FakeClock`` still works."""
    if name in ("FakeClock", "ScriptedDevice", "drain", "windows", "Script"):
        import sdk.testing

        return getattr(sdk.testing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
