"""The spool on a real full disk (a small tmpfs), its real disk use, and a damaged write-ahead log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sdk.telemetry.core import Telemetry
from sdk.telemetry.settings import TelemetrySettings
from sdk.telemetry.spool import MIN_DISK_BYTES, Spool, read_messages

REPO = Path(__file__).resolve().parents[2]


def _child(code: str) -> dict:
    """Run ``code`` (``Spool`` imported; it sets ``out``) in a process that ends with os._exit: no clean
    close, no final checkpoint, as when a device loses power."""
    prog = ("import json, os, sys\nfrom sdk.telemetry.spool import Spool\n" + code +
            "\nsys.stdout.write(json.dumps(out)); sys.stdout.flush(); os._exit(0)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, env=env, timeout=120,
                         check=True)
    return json.loads(res.stdout)


@pytest.fixture
def small_fs(tmp_path: Path):
    """A 1 MiB tmpfs: a disk that really fills up."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True,
                      check=False).returncode:
        pytest.skip("hardware: no permission to mount a small tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


FILL_AND_PUT = """
s = Spool({spool!r}, max_bytes=4 << 20)
ok = [s.put("t", "telemetry", {{"i": i, "pad": "x" * 200}}) for i in range(5)]
fd = os.open({filler!r}, os.O_WRONLY | os.O_CREAT)   # fill the disk
try:
    while True:
        os.write(fd, bytes(4096))
except OSError:
    os.close(fd)
res = [s.put("t", "drift", {{"i": i, "pad": "y" * 200}}) for i in range(300)]
out = {{"ok": sum(x is not None for x in ok), "refused": sum(x is None for x in res), "stats": s.stats()}}
"""


def test_disk_full_losses_survive_the_process_and_travel_in_the_next_message(small_fs: Path) -> None:
    spool, filler = small_fs / "s.db", small_fs / "filler"
    out = _child(FILL_AND_PUT.format(spool=str(spool), filler=str(filler)))
    assert out["ok"] == 5 and out["refused"] > 250
    lost = out["stats"]["disk_full"]
    assert lost == out["refused"]  # every refusal counted in the process that saw it ...

    s = Spool(spool, max_bytes=4 << 20)  # ... and still known to the next process, disk still full
    assert s.counters["disk_full"] == lost
    s.close()

    filler.unlink()  # space again: the next message carries the count, and it is in the database now
    st = TelemetrySettings(spool=str(spool), device_id="d", spool_max_bytes=4 << 20).finish()
    tel = Telemetry(st, kind="audio")
    tel.publish_telemetry(fps=1.0)
    tel.close()
    last = read_messages(spool)[-1]["body"]
    assert last["type"] == "telemetry" and last["spool"]["disk_full"] == lost
    os.unlink(f"{spool}-loss")  # without the ledger the database alone still has it
    assert Spool(spool).counters["disk_full"] == lost


@pytest.mark.parametrize("max_bytes", [MIN_DISK_BYTES, 600_000])
def test_real_disk_use_stays_within_max_bytes(tmp_path: Path, max_bytes: int) -> None:
    s = Spool(tmp_path / "s.db", max_bytes=max_bytes)
    worst = 0
    for i in range(400):
        s.put("ember/f/d/telemetry", "telemetry", {"i": i, "pad": "z" * 2000})
        if i % 5 == 0:
            worst = max(worst, s.disk_bytes())
    stats = s.stats()
    assert worst <= max_bytes and stats["disk_bytes"] <= max_bytes
    assert stats["messages"] > 20 and stats["dropped_telemetry"] == 400 - stats["messages"]
    assert stats["bytes"] > 0.3 * max_bytes * (1 if max_bytes > MIN_DISK_BYTES else 0.1)  # not starved
    s.close()


WRITE = """
s = Spool({spool!r})
for i in range(40):
    s.put("t", "drift", {{"i": i, "pad": "w" * 100}})
out = {{"count": s.count}}
"""


def _damage_frame(wal: Path, frame: int) -> None:
    raw = bytearray(wal.read_bytes())
    page = int.from_bytes(raw[8:12], "big")
    at = 32 + frame * (24 + page) + 24 + 200  # inside the frame's page data
    raw[at] ^= 0xFF
    wal.write_bytes(bytes(raw))


def test_intact_wal_loses_nothing(tmp_path: Path) -> None:
    spool = tmp_path / "s.db"
    assert _child(WRITE.format(spool=str(spool)))["count"] == 40
    s = Spool(spool)
    assert s.count == 40 and s.counters["wal_lost"] == 0


def test_damaged_wal_is_detected_and_counted_once(tmp_path: Path) -> None:
    spool = tmp_path / "s.db"
    _child(WRITE.format(spool=str(spool)))
    wal = Path(f"{spool}-wal")
    frames = (wal.stat().st_size - 32) // (24 + int.from_bytes(wal.read_bytes()[8:12], "big"))
    assert frames > 40  # the puts are still in the log (no checkpoint ran)
    _damage_frame(wal, frames // 3)
    s = Spool(spool)
    assert 0 < s.count < 40  # SQLite dropped everything after the damaged frame ...
    assert s.counters["wal_lost"] == 40 - s.count  # ... and each lost commit is counted
    assert s.stats()["wal_lost"] == 40 - s.count
    s.close()
    again = Spool(spool)
    assert again.counters["wal_lost"] == 40 - again.count  # counted once, not at every open
    again.close()
