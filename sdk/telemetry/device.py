"""Device state for telemetry (CPU, memory, battery, temperature) from psutil; replace it with an
injectable provider (``Telemetry(device_state=fn)``) on hardware psutil cannot see."""

from __future__ import annotations

from typing import Any

import psutil


def default_device_state() -> dict[str, Any]:
    """``{"cpu_percent", "mem_percent", "battery_percent", "temperature_c"}`` (None when unknown)."""
    battery = None
    temp = None
    try:
        b = psutil.sensors_battery()
        battery = None if b is None else round(float(b.percent), 1)
    except (AttributeError, OSError):
        pass
    try:
        temps = psutil.sensors_temperatures() if hasattr(psutil, "sensors_temperatures") else {}
        readings = [t.current for group in temps.values() for t in group if t.current]
        temp = round(max(readings), 1) if readings else None
    except (AttributeError, OSError):
        pass
    return {"cpu_percent": psutil.cpu_percent(interval=None), "mem_percent": psutil.virtual_memory().percent,
            "battery_percent": battery, "temperature_c": temp}
