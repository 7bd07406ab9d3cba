"""``ember fleet record --db postgresql://…``: batching, de-duplication by (fleet, device, seq), day
partitions, the history API — against a real PostgreSQL server and a real mosquitto."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from sdk.errors import TelemetryError
from sdk.fleet.loadgen import payload, publish_load
from sdk.fleet.record import HistoryDB, Recorder, load_history, parse
from sdk.fleet.report import write_report
from sdk.telemetry.settings import TelemetrySettings

REPO = Path(__file__).resolve().parents[2]


def settings(broker_url: str, fleet: str = "f") -> TelemetrySettings:
    return TelemetrySettings(broker=broker_url, fleet=fleet).finish()


def wait_until(predicate, timeout: float = 15.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def rows_and_distinct(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as c:
        return c.execute("SELECT count(*), count(DISTINCT (fleet, device, seq)) FROM ember_history").fetchone()


def test_batches_and_duplicates_over_a_real_broker(broker, pg_db: str) -> None:
    rec = Recorder(settings(broker.url), pg_db, batch=500, flush_ms=50).start()
    devices = [f"d{i}" for i in range(8)]
    publish_load(broker.url, "f", devices, per_device=150, repeat=2)  # every message twice: 2400 sent
    assert wait_until(lambda: rec.stats()["stored"] + rec.stats()["duplicates"] >= 2400)
    stats = rec.stop()
    assert stats["received"] == 2400 and stats["stored"] == 1200 and stats["duplicates"] == 1200
    assert stats["unsaved"] == 0 and stats["dropped"] == 0 and stats["invalid"] == 0
    assert 5 <= stats["batches"] <= 150  # batched: 2400 messages in at least 5 transactions of <= 500
    assert rows_and_distinct(pg_db) == (1200, 1200)
    assert stats["lag_p95_s"] is not None and stats["lag_p95_s"] >= stats["lag_p50_s"] > 0


def test_same_device_seq_twice_is_one_row_also_across_batches(pg_db: str) -> None:
    db = HistoryDB(pg_db)
    ts = time.time()
    msg = payload("f", "d1", 7, ts=ts)
    assert db.add("ember/f/d1/telemetry", msg)
    assert not db.add("ember/f/d1/telemetry", msg)  # a resend from the device's spool: the same bytes
    now = time.time()
    batch = [parse("ember/f/d1/telemetry", payload("f", "d1", s, ts=ts), now) for s in (7, 8, 8, 9)]
    assert db.write(batch) == 2  # 7 is already stored, 8 comes twice in one batch
    assert db.write([parse("ember/g/d1/telemetry", payload("g", "d1", 7, ts=ts), now)]) == 1  # another fleet
    # the key holds the device's ts (the partition key): a seq that comes back with another ts is a
    # new message (a device whose spool was reset), not a resend, and is kept
    assert db.write([parse("ember/f/d1/telemetry", payload("f", "d1", 7, ts=ts + 60), now)]) == 1
    assert (db.stored, db.duplicates) == (5, 3)
    db.close()
    assert rows_and_distinct(pg_db) == (5, 4)


def test_day_partitions_are_created_on_demand_across_midnight(pg_db: str) -> None:
    midnight = datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp()
    db = HistoryDB(pg_db)
    assert db.store.layout == "partitioned"  # TimescaleDB is not installed here
    now = time.time()
    msgs = [parse("ember/f/d1/telemetry", payload("f", "d1", s, ts=midnight + dt), now)
            for s, dt in ((1, -1.0), (2, 1.0), (3, 86399.5))]
    assert db.write(msgs) == 3
    assert db.write(msgs[:1]) == 0  # the resend lands in the same partition and hits its unique key
    broken_clock = parse("ember/f/d1/telemetry", payload("f", "d1", 4, ts=5.0), now)  # 1970: use the receive time
    assert db.write([broken_clock]) == 1
    db.close()
    with psycopg.connect(pg_db) as c:
        where = dict(c.execute("SELECT seq, tableoid::regclass::text FROM ember_history").fetchall())
        parts = {r[0] for r in c.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                          "WHERE i.inhparent = 'ember_history'::regclass")}
        plan = "\n".join(r[0] for r in c.execute(
            "EXPLAIN SELECT * FROM ember_history WHERE device = 'd1' AND ts >= '2026-03-02' AND ts < '2026-03-03'"))
    today = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%d")
    assert where == {1: "ember_history_20260301", 2: "ember_history_20260302", 3: "ember_history_20260302",
                     4: f"ember_history_{today}"}
    assert parts == {"ember_history_20260301", "ember_history_20260302", f"ember_history_{today}"}
    assert "ember_history_20260301" not in plan and "ember_history_20260302" in plan  # partition pruning


def test_history_api_reads_back_what_the_report_needs(broker, pg_db: str, tmp_path: Path) -> None:
    db = HistoryDB(pg_db)
    t0 = time.time() - 10
    for seq in range(1, 21):
        for dev in ("cam1", "cam2"):
            body = {"schema": 1, "device": dev, "fleet": "f", "ts": t0 + seq * 0.1, "seq": seq, "fps": 9.5,
                    "latency_p50_ms": 4.0, "latency_p95_ms": 6.0, "tier": "int8"}
            assert db.add(f"ember/f/{dev}/telemetry", json.dumps(body).encode())
    drift = {"device": "cam1", "fleet": "f", "ts": t0 + 3, "seq": 21, "state": "alert", "features": {}}
    assert db.add("ember/f/cam1/drift", json.dumps(drift).encode())
    assert db.add("ember/f/cam1/status", b'{"state": "online"}')
    db.close()
    rows = load_history(pg_db)
    assert len(rows) == 41 and [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)
    first = rows[0]
    assert set(first) == {"device", "channel", "seq", "ts", "body"} and first["body"]["fps"] == 9.5
    assert abs(first["ts"] - (t0 + 0.1)) < 1e-3 and first["channel"] == "telemetry"
    cam1 = load_history(pg_db, device="cam1", since=t0 + 1.05)
    assert [r["seq"] for r in cam1] == list(range(11, 22))
    assert {r["device"] for r in cam1} == {"cam1"} and cam1[-1]["channel"] == "drift"
    assert load_history(pg_db, fleet="other") == []
    page = write_report(pg_db, tmp_path / "r.html").read_text()
    assert "cam1" in page and "cam2" in page and "41 messages" in page
    with psycopg.connect(pg_db) as c:
        assert c.execute("SELECT state FROM ember_status WHERE device = 'cam1'").fetchone() == ("online",)


def test_unreachable_database_or_no_recording_is_one_clear_line(pg_db: str) -> None:
    from sdk.fleet.broker import free_port

    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nope"
    with pytest.raises(TelemetryError, match=r"PostgreSQL 127\.0\.0\.1:\d+/nope: cannot connect .*check --db"):
        HistoryDB(url)
    with pytest.raises(TelemetryError, match="holds no Ember recording"):
        load_history(pg_db)  # reading creates nothing
    with psycopg.connect(pg_db) as c:
        assert c.execute("SELECT to_regclass('ember_history')").fetchone() == (None,)
    proc = subprocess.run([sys.executable, "-m", "sdk", "fleet", "record", "--broker", "mqtt://127.0.0.1:1",
                           "--fleet", "f", "--db", url, "--duration", "1"], check=False, capture_output=True, text=True,
                          cwd=REPO, timeout=60, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.returncode != 0 and "cannot connect" in proc.stderr and "Traceback" not in proc.stderr


def test_invalid_and_poison_messages_are_counted_and_block_nothing(broker, pg_db: str) -> None:
    from paho.mqtt import publish

    rec = Recorder(settings(broker.url), pg_db, batch=10, flush_ms=20).start()
    good = [("ember/f/d1/telemetry", payload("f", "d1", s), 1) for s in (1, 2, 3)]
    bad = [("ember/f/d1/telemetry", b"not json", 1), ("ember/f/d1/telemetry", b'{"ts": 1}', 1),  # no seq
           ("ember/f/d1/telemetry", b'{"seq": 9, "x": NaN}', 1),  # Python reads NaN, PostgreSQL does not
           ("ember/f/d1/telemetry", b'{"seq": 10, "x": "a\\u0000b"}', 1)]  # NUL: no text type holds it
    poison = ("ember/f/d1/telemetry", b'{"seq": 11, "ts": 1.7e9, "x": "\\ud800"}', 1)  # jsonb refuses a lone surrogate
    publish.multiple([good[0], *bad, poison, *good[1:]], hostname="127.0.0.1", port=broker.port)
    assert wait_until(lambda: rec.stats()["stored"] == 3 and rec.stats()["rejected"] == 1)
    stats = rec.stop()
    assert stats["invalid"] == 4 and stats["unsaved"] == 0 and stats["duplicates"] == 0
    assert sorted(r["seq"] for r in load_history(pg_db)) == [1, 2, 3]


def test_messages_with_mqtt5_properties_are_recorded_too(broker, pg_db: str) -> None:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    rec = Recorder(settings(broker.url), pg_db, batch=10, flush_ms=20).start()
    device = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    device.connect("127.0.0.1", broker.port)
    device.loop_start()
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("site", "paris")
    props.MessageExpiryInterval = 600
    for seq, p in ((1, None), (2, props), (3, None), (4, props)):  # without: the fast path; with: paho's
        device.publish("ember/f/d1/telemetry", payload("f", "d1", seq), qos=1, properties=p).wait_for_publish(5)
    device.publish("ember/f/d1/telemetry", payload("f", "d1", 5), qos=0).wait_for_publish(5)
    device.loop_stop()
    assert wait_until(lambda: rec.stats()["stored"] == 5)
    assert rec.stop()["invalid"] == 0
    assert [r["seq"] for r in load_history(pg_db)] == [1, 2, 3, 4, 5]


def test_cli_records_into_postgresql_and_the_same_recorder_into_sqlite(broker, pg_db: str, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "sdk", "fleet", "record", "--broker", broker.url, "--fleet", "f",
                             "--db", pg_db, "--duration", "2", "--batch", "50", "--flush-ms", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    rec = Recorder(settings(broker.url), tmp_path / "rec.db", batch=50, flush_ms=20).start()
    device = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    device.connect("127.0.0.1", broker.port)
    device.loop_start()
    seq = 0
    while proc.poll() is None and seq < 5000:  # publish until the CLI recorder has stopped
        seq += 1
        device.publish("ember/f/d1/telemetry", payload("f", "d1", seq), qos=1).wait_for_publish(5)
        time.sleep(0.002)
    device.loop_stop()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    stats = json.loads(out.strip().splitlines()[-1])
    rows, distinct = rows_and_distinct(pg_db)
    assert stats["stored"] == rows == distinct > 20 and stats["unsaved"] == 0
    assert wait_until(lambda: rec.stats()["stored"] == seq)
    rec.stop()
    assert [r["seq"] for r in load_history(tmp_path / "rec.db")] == list(range(1, seq + 1))
