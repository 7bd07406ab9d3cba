"""What this machine offers: cameras, microphones, serial ports, runtimes, battery and thermal
sensors. ``discover()`` returns a JSON-serialisable dict; ``format_report()`` renders it as text.
Every probe is quick (no model compiled) and a failing probe reports its reason instead of raising.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def cameras(dev: Path = Path("/dev"), sysfs: Path = Path("/sys/class/video4linux")) -> dict[str, Any]:
    """``/dev/video*`` nodes (with their V4L2 names) and whether ``csi://`` can work."""
    from sdk.sources.camera import is_jetson, opencv_has_gstreamer

    nodes = []
    for node in sorted(dev.glob("video*"), key=lambda p: (len(p.name), p.name)):
        name = _read(sysfs / node.name / "name")
        nodes.append({"uri": f"v4l2://{node}", "device": str(node), "name": name or "unknown"})
    gst = opencv_has_gstreamer()
    csi = {"gstreamer": gst, "platform": "jetson" if is_jetson() else "libcamera",
           "usable": gst, "reason": None if gst else "OpenCV was built without GStreamer"}
    return {"devices": nodes, "reason": None if nodes else f"no {dev}/video* nodes", "csi": csi}


def microphones() -> dict[str, Any]:
    """Input devices PortAudio sees (sounddevice), or the reason there are none."""
    try:
        import sounddevice as sd
    except OSError as e:
        return {"devices": [], "reason": f"PortAudio library missing ({e}); apt install libportaudio2"}
    except ImportError:
        return {"devices": [], "reason": "sounddevice is not installed (pip install 'ember-edge[audio]')"}
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0]
    except Exception as e:  # noqa: BLE001 - PortAudioError when the host API fails
        return {"devices": [], "reason": f"PortAudio error: {e}"}
    found = [{"uri": f"mic://{d['index']}", "index": d["index"], "name": d["name"],
              "channels": d["max_input_channels"], "rate": d["default_samplerate"],
              "default": d["index"] == default_in}
             for d in devices if d["max_input_channels"] > 0]
    reason = None if found else ("PortAudio lists no devices (no sound card, or no ALSA/PulseAudio access)"
                                 if not len(devices) else "PortAudio lists only output devices")
    return {"devices": found, "reason": reason}


def serial_ports() -> dict[str, Any]:
    """Serial ports pyserial finds (USB adapters, UARTs)."""
    try:
        from serial.tools import list_ports
    except ImportError:
        return {"devices": [], "reason": "pyserial is not installed (pip install 'ember-edge[sensors]')"}
    ports = [{"uri": f"serial://{p.device}", "device": p.device,
              "description": p.description if p.description != "n/a" else None,
              "hwid": p.hwid if p.hwid != "n/a" else None} for p in sorted(list_ports.comports())]
    return {"devices": ports, "reason": None if ports else "no serial ports"}


def _onnxruntime() -> dict[str, Any]:
    import onnxruntime as ort

    return {"version": ort.__version__, "providers": list(ort.get_available_providers())}


def _litert() -> dict[str, Any]:
    for module, dist in (("ai_edge_litert.interpreter", "ai-edge-litert"), ("tflite_runtime.interpreter", "tflite-runtime")):
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        except Exception as e:  # noqa: BLE001 - e.g. tflite_runtime built against numpy 1
            return {"module": module, "version": _version(dist), "usable": False, "reason": str(e)}
        return {"module": module, "version": _version(dist)}
    raise ImportError("neither ai_edge_litert nor tflite_runtime is installed (pip install 'ember-edge[litert]')")


def _tinygrad() -> dict[str, Any]:
    from tinygrad import Device

    clang = shutil.which("clang")
    info: dict[str, Any] = {"version": _version("tinygrad"), "clang": clang}
    try:
        info["default_device"] = Device.DEFAULT
        info["devices"] = list(Device.get_available_devices())
    except Exception as e:  # noqa: BLE001 - "no usable devices" without clang
        info.update(usable=False, reason=f"{e}" + ("" if clang else " (install clang for its CPU device)"))
    return info


def runtimes() -> dict[str, Any]:
    """Inference runtimes importable here, with versions and devices/providers."""
    probes: dict[str, Callable[[], dict[str, Any]]] = {
        "onnxruntime": _onnxruntime, "litert": _litert, "tinygrad": _tinygrad}
    out: dict[str, Any] = {}
    for name, probe in probes.items():
        try:
            out[name] = {"available": True, **probe()}
        except ImportError as e:
            out[name] = {"available": False, "reason": str(e)}
        except Exception as e:  # noqa: BLE001 - a broken install is reported, not raised
            out[name] = {"available": False, "reason": f"{type(e).__name__}: {e}"}
        if out[name].get("usable") is False:
            out[name]["available"] = False
    return out


def power(supplies: Path = Path("/sys/class/power_supply"),
          thermal: Path = Path("/sys/class/thermal")) -> dict[str, Any]:
    """Battery (psutil or sysfs), power supplies and thermal zones with their readings."""
    from sdk.device import battery_reader

    battery = battery_reader(supplies)
    psu = [{"name": p.name, "type": _read(p / "type"), "capacity": _read(p / "capacity"),
            "status": _read(p / "status")} for p in sorted(supplies.glob("*"))] if supplies.is_dir() else []
    zones = []
    for zone in sorted(thermal.glob("thermal_zone*")) if thermal.is_dir() else []:
        raw = _read(zone / "temp")
        temp = int(raw) / 1000.0 if raw and raw.lstrip("-").isdigit() else None
        zones.append({"name": zone.name, "type": _read(zone / "type"), "temperature_c": temp})
    try:
        import psutil

        sensors = psutil.sensors_temperatures() if hasattr(psutil, "sensors_temperatures") else {}
    except Exception:  # noqa: BLE001 - unsupported platform
        sensors = {}
    temps = [{"name": f"{chip}/{t.label or i}", "temperature_c": t.current}
             for chip, entries in sensors.items() for i, t in enumerate(entries)]
    return {"battery": battery or None, "power_supplies": psu, "thermal_zones": zones, "temperatures": temps}


def discover() -> dict[str, Any]:
    """Everything above, one section per kind."""
    from sdk.device import device_class

    sections: dict[str, Callable[[], Any]] = {"cameras": cameras, "microphones": microphones,
                                              "serial": serial_ports, "runtimes": runtimes, "power": power}
    report: dict[str, Any] = {"device_class": device_class()}
    for name, probe in sections.items():
        try:
            report[name] = probe()
        except Exception as e:  # noqa: BLE001 - one failing probe must not hide the others
            log.warning("probing %s failed: %s", name, e)
            report[name] = {"error": f"{type(e).__name__}: {e}"}
    return report


def _devices_lines(title: str, section: dict[str, Any], fmt: Callable[[dict[str, Any]], str]) -> list[str]:
    if "error" in section:
        return [f"{title}: probe failed: {section['error']}"]
    lines = [f"{title}:"]
    lines += [f"  {fmt(d)}" for d in section["devices"]] or [f"  none ({section['reason']})"]
    return lines


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table of ``discover()``'s result."""
    lines = [f"device class: {report['device_class']}"]
    cams = report["cameras"]
    lines += _devices_lines("cameras", cams, lambda d: f"{d['uri']:<28} {d['name']}")
    if "csi" in cams:
        csi = cams["csi"]
        lines.append(f"  csi://0  {'usable' if csi['usable'] else 'not usable: ' + str(csi['reason'])}"
                     f" (platform {csi['platform']})")
    lines += _devices_lines("microphones", report["microphones"], lambda d: (
        f"{d['uri']:<28} {d['name']} ({d['channels']} ch, {d['rate']:.0f} Hz){' default' if d['default'] else ''}"))
    lines += _devices_lines("serial ports", report["serial"],
                            lambda d: f"{d['uri']:<28} {d['description'] or ''} {d['hwid'] or ''}".rstrip())
    lines.append("runtimes:")
    for name, info in report["runtimes"].items():
        if not isinstance(info, dict) or not info.get("available"):
            lines.append(f"  {name:<12} not available: {info.get('reason') if isinstance(info, dict) else info}")
            continue
        extra = {"onnxruntime": lambda i: "providers " + ", ".join(i["providers"]),
                 "litert": lambda i: f"module {i['module']}",
                 "tinygrad": lambda i: f"default {i.get('default_device')}, devices {', '.join(i.get('devices', []))}"
                 f", clang {'yes' if i.get('clang') else 'no'}"}[name](info)
        lines.append(f"  {name:<12} {info.get('version') or '?':<10} {extra}")
    pw = report["power"]
    if "error" in pw:
        lines.append(f"power: probe failed: {pw['error']}")
        return "\n".join(lines)
    bat = pw["battery"]
    lines.append("power:")
    lines.append(f"  battery      {bat['battery_percent']} % charging={bat['charging']}" if bat else "  battery      none")
    lines += [f"  supply       {p['name']} ({p['type']})" for p in pw["power_supplies"]]
    temps = [f"{z['type'] or z['name']}={z['temperature_c']} °C" for z in pw["thermal_zones"]] or \
        [f"{t['name']}={t['temperature_c']} °C" for t in pw["temperatures"]]
    lines.append(f"  thermal      {', '.join(temps) if temps else 'none'}")
    return "\n".join(lines)
