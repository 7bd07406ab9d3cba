"""The recorder at scale: two recorders sharing a subscription, a PostgreSQL restart under load, and
devices on a site broker bridged to a central broker — real mosquitto and PostgreSQL throughout."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from sdk.fleet.broker import LocalBroker, free_port
from sdk.fleet.loadgen import publish_load
from sdk.fleet.postgres import LocalPostgres
from sdk.fleet.record import Recorder, load_history
from tests.fleet.test_record_pg import rows_and_distinct, settings, wait_until


def test_two_recorders_with_a_shared_subscription_split_the_fleet(broker, pg_db: str) -> None:
    a = Recorder(settings(broker.url), pg_db, shared="rec", batch=200, flush_ms=50).start()
    b = Recorder(settings(broker.url), pg_db, shared="rec", batch=200, flush_ms=50).start()
    publish_load(broker.url, "f", [f"d{i}" for i in range(10)], per_device=120)
    assert wait_until(lambda: a.stats()["stored"] + b.stats()["stored"] >= 1200)
    sa, sb = a.stop(), b.stop()
    assert sa["received"] + sb["received"] == 1200  # each message went to one of them
    assert min(sa["received"], sb["received"]) > 200  # and both took a real share
    assert sa["duplicates"] + sb["duplicates"] == 0
    assert rows_and_distinct(pg_db) == (1200, 1200)


def test_recorder_survives_a_postgresql_restart_without_losing_buffered_messages(broker) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="ember-pg-restart-"))  # under /tmp: the postgres user must reach it
    pg = LocalPostgres(port=free_port(), workdir=workdir).start()
    try:
        rec = Recorder(settings(broker.url), pg.url, batch=100, flush_ms=20, max_buffer=600).start()
        devices = [f"d{i}" for i in range(5)]
        publish_load(broker.url, "f", devices, per_device=100)
        assert wait_until(lambda: rec.stats()["stored"] == 500)
        pg.stop()  # -m immediate: the server vanishes under the recorder
        publish_load(broker.url, "f", devices, per_device=100, first_seq=101)  # QoS 1: all kept
        assert wait_until(lambda: rec.stats()["db_errors"] > 0 and rec.stats()["received"] == 1000)
        publish_load(broker.url, "f", devices, per_device=60, first_seq=201, qos=0)  # 100 fit, 200 dropped
        assert wait_until(lambda: rec.stats()["received"] + rec.stats()["dropped"] == 1300)
        assert rec.stats()["stored"] == 500 and rec.stats()["unsaved"] == 600 and rec.stats()["dropped"] == 200
        assert rec.last_error.startswith("PostgreSQL 127.0.0.1") and "cannot" in rec.last_error
        pg.start()
        assert wait_until(lambda: rec.stats()["stored"] == 1100, timeout=20)
        stats = rec.stop()
        assert stats["unsaved"] == 0 and stats["duplicates"] == 0
        assert rows_and_distinct(pg.url) == (1100, 1100)
    finally:
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_a_recorder_with_a_client_id_gets_what_came_while_it_was_away(broker, pg_db: str) -> None:
    first = Recorder(settings(broker.url), pg_db, client_id="rec-a", batch=100, flush_ms=20).start()
    publish_load(broker.url, "f", ["d1", "d2"], per_device=50)
    assert wait_until(lambda: first.stats()["stored"] == 100)
    first.stop()
    publish_load(broker.url, "f", ["d1", "d2"], per_device=75, first_seq=51)  # nobody subscribed now
    second = Recorder(settings(broker.url), pg_db, client_id="rec-a", batch=100, flush_ms=20).start()
    assert wait_until(lambda: second.stats()["stored"] == 150)
    assert second.stop()["duplicates"] == 0
    assert rows_and_distinct(pg_db) == (250, 250)


def _bridged(central: LocalBroker, site_dir: Path) -> LocalBroker:
    bridge = (f"connection central\naddress 127.0.0.1:{central.port}\ntopic ember/# out 1\n"
              "bridge_protocol_version mqttv50\ncleansession false\nremote_clientid site-bridge\n"
              "start_type automatic\nrestart_timeout 1\n")
    return LocalBroker(extra=bridge, workdir=site_dir).start()


def test_devices_on_a_bridged_site_broker_reach_the_central_recorder(pg_db: str, tmp_path: Path) -> None:
    with LocalBroker() as central:
        site = _bridged(central, tmp_path / "site")
        try:
            seen: list[str] = []
            watcher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            watcher.on_message = lambda c, u, m: seen.append(m.topic)
            watcher.connect("127.0.0.1", central.port)
            watcher.subscribe("ember/#", qos=1)
            watcher.loop_start()
            # wait for the bridge: a probe published on the site must come out at the centre
            probe = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            probe.connect("127.0.0.1", site.port)
            probe.loop_start()
            assert wait_until(lambda: probe.publish("ember/probe/x/ping", b"{}", qos=1).rc == 0
                              and (time.sleep(0.1) or "ember/probe/x/ping" in seen), timeout=15)
            probe.loop_stop()
            rec = Recorder(settings(central.url, "site1"), pg_db, batch=500, flush_ms=50).start()
            devices = [f"cam{i}" for i in range(4)]
            publish_load(site.url, "site1", devices, per_device=250)  # devices talk to the site broker only
            assert wait_until(lambda: rec.stats()["stored"] >= 1000)
            stats = rec.stop()
            watcher.loop_stop()
        finally:
            site.stop()
    assert stats["received"] == 1000 and stats["duplicates"] == 0
    expected = {f"ember/site1/{d}/telemetry" for d in devices}
    assert set(seen) - {"ember/probe/x/ping"} == expected  # the same topics end to end
    rows = load_history(pg_db, fleet="site1")
    assert len(rows) == 1000 and {f"ember/site1/{r['device']}/{r['channel']}" for r in rows} == expected
    assert {(r["device"], r["seq"]) for r in rows} == {(d, s) for d in devices for s in range(1, 251)}
    with psycopg.connect(pg_db) as c:
        assert c.execute("SELECT count(*) FROM ember_history WHERE body->>'fleet' = 'site1'").fetchone() == (1000,)


def test_threads_left_behind_are_none(broker, pg_db: str) -> None:
    before = {t.name for t in threading.enumerate()}
    rec = Recorder(settings(broker.url), pg_db).start()
    rec.stop()
    assert wait_until(lambda: not ({t.name for t in threading.enumerate()} - before), timeout=5)
