"""Telemetry cost: CPU and wall time per frame of statistics + drift (Telemetry.observe) per app
kind, and CPU of publishing telemetry at 1 Hz to a real local mosquitto.

Inside the timed loop drift is evaluated every ``window_block`` frames and every report is spooled
(``drift_interval_s=0``) to the SQLite spool on disk (ext4 here, not tmpfs; WAL, ``synchronous=FULL``:
one fsync per message); the loop counts both, so a run that evaluated or spooled nothing shows it.
The publisher reads the real device state (``sdk.device``: psutil CPU/memory, sysfs battery and
thermal) for every message.

    .venv/bin/python bench/telemetry.py [--frames 5000] [--publish-seconds 20]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np
from _util import load, write_result

from sdk.events import EventBus
from sdk.fleet.broker import LocalBroker
from sdk.telemetry import Telemetry, TelemetrySettings, build_reference_profile


def _inputs(kind: str, rng: np.random.Generator, n: int) -> list[np.ndarray]:
    if kind == "image":
        return [rng.normal(120, 30, (480, 640, 3)).clip(0, 255).astype(np.uint8) for _ in range(n)]
    if kind == "audio":
        return [(0.1 * rng.normal(size=16000)).astype(np.float32) for _ in range(n)]  # 1 s at 16 kHz
    t = np.arange(360) / 360  # 1 s blocks of 2-lead ECG at 360 Hz
    return [np.stack([np.sin(2 * np.pi * 1.2 * t) ** 31 + 0.05 * rng.normal(size=360)] * 2, 1).astype(np.float32)
            for _ in range(n)]


def stats_cost(kind: str, frames: int, tmp: Path) -> dict[str, float]:
    rng = np.random.default_rng(0)
    data = _inputs(kind, rng, 32)
    outs = [rng.dirichlet(np.ones(12)) for _ in range(32)]
    profile = build_reference_profile(data * 8, kind, outputs=outs * 8)
    s = TelemetrySettings(spool=str(tmp / f"{kind}.spool"), device_id="bench", drift_interval_s=0.0).finish()
    tel = Telemetry(s, kind=kind, profile=profile, bus=EventBus())
    for i in range(600):  # warm up (also fills the window so drift is evaluated)
        tel.observe(data[i % 32], outs[i % 32])
    spooled0, reports = tel.spool.count, 0
    c0, w0 = time.process_time(), time.perf_counter()
    for i in range(frames):
        reports += tel.observe(data[i % 32], outs[i % 32]) is not None
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    spooled = tel.spool.count - spooled0
    tel.close()
    if reports == 0 or spooled < reports:
        raise SystemExit(f"{kind}: {reports} drift reports and {spooled} spooled in the timed loop: nothing measured")
    return {"cpu_us_per_frame": round(cpu / frames * 1e6, 2), "wall_us_per_frame": round(wall / frames * 1e6, 2),
            "frames": frames, "drift_reports": reports, "spooled_with_fsync": spooled}


def publish_cost(seconds: float, tmp: Path) -> dict[str, float]:
    with LocalBroker() as broker:
        s = TelemetrySettings(broker=broker.url, spool=str(tmp / "pub.spool"), device_id="bench",
                              telemetry_qos=1).finish()
        tel = Telemetry(s, kind="image", bus=EventBus())  # device_state: the real readers (sdk.device)
        tel.start()
        tel.wait_connected(5)
        time.sleep(1.0)
        r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        n = 0
        next_t = time.perf_counter()
        while time.perf_counter() - w0 < seconds:
            tel.publish_telemetry(fps=30.0, latency_p50_ms=10.0, latency_p95_ms=14.0, drops=0)
            n += 1
            next_t += 1.0
            time.sleep(max(0.0, next_t - time.perf_counter()))
        r1, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - w0
        flushed = tel.flush(5)
        state = tel.device_state()
        tel.close()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return {"publish_cpu_percent": round(100 * cpu / wall, 3), "messages": n, "seconds": round(wall, 1),
            "all_acknowledged": flushed, "device_state_sample": state}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=5000)
    ap.add_argument("--publish-seconds", type=float, default=20.0)
    a = ap.parse_args()
    load_before = load()
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as d:  # on disk: fsync is real
        tmp = Path(d)
        per_kind = {k: stats_cost(k, a.frames if k == "image" else a.frames // 2, tmp) for k in ("image", "audio", "ecg")}
        pub = publish_cost(a.publish_seconds, tmp)
    write_result("telemetry", {
        "stats_us_per_frame": per_kind["image"]["cpu_us_per_frame"],
        "stats_target_us": 50,
        "stats_by_kind": per_kind,
        "stats_note": "Telemetry.observe on 640x480 BGR frames (image), 1 s 16 kHz chunks (audio), 1 s 360 Hz "
                      "blocks (ecg), with a 12-class softmax output, drift evaluated every 128 frames inside the "
                      "timed loop and every report spooled there (SQLite WAL, synchronous=FULL: fsync, on ext4); "
                      "CPU time via time.process_time, wall time includes the fsync waits",
        "publish_cpu_percent": pub["publish_cpu_percent"],
        "publish_target_percent": 1.0,
        "publish": pub,
        "publish_note": "one telemetry message per second, QoS 1, to a local mosquitto, with the device state "
                        "read by the real readers each time; process CPU (user+sys, all threads incl. the MQTT "
                        "link thread) / wall time",
        "command": "python bench/telemetry.py",
    }, load_before)


if __name__ == "__main__":
    main()
