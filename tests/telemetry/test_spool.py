"""The spool: persistence of sequence numbers, the full policy, a full disk, corruption checks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sdk.events import EventBus
from sdk.telemetry import Spool, Telemetry, TelemetrySettings, read_messages, verify


def test_sequence_persists_across_restarts_and_acks(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db")
    ids = [s.put("t/telemetry", "telemetry", {"i": i}) for i in range(5)]
    assert ids == [1, 2, 3, 4, 5]
    assert s.ack(ids) == 5 and s.count == 0
    s.close()
    s = Spool(tmp_path / "s.db")
    assert s.put("t/events", "event", {"i": 5}) == 6  # never reused, even after the spool emptied
    assert [m.id for m in s.pending()] == [6]
    s.close()


def test_full_spool_drops_oldest_telemetry_first_then_policy(tmp_path: Path) -> None:
    body = {"pad": "x" * 400}
    s = Spool(tmp_path / "a.db", max_bytes=4096, full_policy="drop_oldest")
    for _ in range(4):
        s.put("t/events", "event", body)
    for _ in range(20):
        s.put("t/telemetry", "telemetry", body)
    kinds = [m.kind for m in s.pending(limit=100)]
    assert kinds.count("event") == 4 and s.counters["dropped_telemetry"] > 0
    for _ in range(20):
        assert s.put("t/drift", "drift", body) is not None  # critical: telemetry goes, then oldest critical
    rest = s.pending(limit=100)
    assert all(m.kind != "telemetry" for m in rest) and s.counters["lost_critical"] > 0
    assert [m.id for m in rest] == sorted(m.id for m in rest) and s.bytes <= 4096
    s.close()
    r = Spool(tmp_path / "r.db", max_bytes=4096, full_policy="refuse")
    first = [r.put("t/events", "event", body) for _ in range(20)]
    assert None in first and r.counters["refused"] == first.count(None) and r.counters["lost_critical"] == 0
    kept = [m.id for m in r.pending(limit=100)]
    assert kept == [i for i in first if i is not None]  # the oldest are kept, the new ones refused
    r.close()


def test_refusals_are_reported_as_events(tmp_path: Path) -> None:
    bus = EventBus()
    seen = []
    bus.subscribe(lambda e: seen.append(e) if e.kind == "telemetry.spool" else None)
    st = TelemetrySettings(spool=str(tmp_path / "s.db"), device_id="d", spool_max_bytes=4096,
                           spool_full_policy="refuse").finish()
    tel = Telemetry(st, kind="audio", bus=bus).start()
    for i in range(40):
        bus.publish("degrade.step", step=i, pad="y" * 300)
    assert tel.spool.counters["refused"] > 0
    assert seen and "refused" in seen[-1].data["counters"] and seen[-1].data["level"] == "error"
    tel.close()


def test_disk_full_is_counted_and_publishing_continues(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db")
    s._db.execute("PRAGMA max_page_count = 8")  # a tiny 'disk'
    results = [s.put("t/telemetry", "telemetry", {"pad": "z" * 2000}) for _ in range(30)]
    assert None in results and s.counters["disk_full"] == results.count(None)
    stored = [r for r in results if r is not None]
    assert stored and [m.id for m in s.pending(limit=100)] == stored  # every committed message is kept
    assert s.ack(stored) == len(stored)  # the broker acknowledged them: their pages are free again
    seq = s.put("t/telemetry", "telemetry", {"small": 1})
    assert seq == stored[-1] + 1 and [m.id for m in s.pending()] == [seq]  # writable again, numbering goes on
    s.close()
    assert verify(tmp_path / "s.db")["ok"]


def test_verify_detects_a_corrupt_record(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db")
    for i in range(3):
        s.put("t/events", "event", {"i": i})
    s.close()
    db = sqlite3.connect(tmp_path / "s.db")
    db.execute("UPDATE messages SET payload = X'00' WHERE id = 2")
    db.commit()
    db.close()
    v = verify(tmp_path / "s.db")
    assert not v["ok"] and v["corrupt_ids"] == [2]
    s = Spool(tmp_path / "s.db")
    assert [m.id for m in s.pending()] == [1, 3] and s.counters["corrupt"] == 1  # skipped, counted
    s.close()
    assert [m["body"]["i"] for m in read_messages(tmp_path / "s.db")] == [0, 2]


def test_unwritable_spool_is_a_clear_error(tmp_path: Path) -> None:
    from sdk.errors import TelemetryError

    (tmp_path / "file").write_text("x")
    with pytest.raises(TelemetryError, match="cannot open"):
        Spool(tmp_path / "file" / "s.db")


def test_skipping_a_corrupt_record_keeps_the_size_accounting(tmp_path: Path) -> None:
    s = Spool(tmp_path / "s.db")
    for i in range(3):
        s.put("t/events", "event", {"i": i})
    s.close()
    with sqlite3.connect(tmp_path / "s.db") as db:
        db.execute("UPDATE messages SET payload = X'00' WHERE id = 2")
    db.close()
    s = Spool(tmp_path / "s.db")
    assert [m.id for m in s.pending()] == [1, 3]
    remaining = sum(len(m.payload) for m in s.pending())
    assert (s.count, s.bytes) == (2, remaining)  # the deleted row no longer counts against max_bytes
    s.close()
    s = Spool(tmp_path / "s.db")
    assert (s.count, s.bytes, s.counters["corrupt"]) == (2, remaining, 1)
    s.close()


def test_a_file_that_is_not_a_spool_is_a_clear_error_and_not_left_open(tmp_path: Path, open_fds_to) -> None:
    from sdk.errors import TelemetryError

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all " * 100)
    with pytest.raises(TelemetryError, match="not a readable spool"):
        read_messages(junk)
    with pytest.raises(TelemetryError):
        Spool(junk)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY)")
    db.close()
    with pytest.raises(TelemetryError, match="not a usable spool"):
        Spool(other)
    assert open_fds_to(junk) == 0 and open_fds_to(other) == 0
