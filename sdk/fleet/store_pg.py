"""PostgreSQL storage for ``ember fleet record --db postgresql://…`` (psycopg 3).

``ember_history`` is range-partitioned by the device's own timestamp ``ts``, one partition per UTC
day created on demand (or a TimescaleDB hypertable with one-day chunks when that extension is
installed). A unique index on a partitioned table must contain the partition key, so the primary
key is ``(fleet, device, seq, ts)``: a duplicate is a message re-sent from a device's spool, the same
bytes with the same ``ts``, so it lands in the same partition and ``ON CONFLICT DO NOTHING`` drops
it. A batch is one COPY into a temporary table and one ``INSERT … SELECT`` in one transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import psycopg

from sdk.errors import TelemetryError

if TYPE_CHECKING:
    from sdk.fleet.record import Row, Status

log = logging.getLogger(__name__)
DAY = 86400.0
_LOCK = 0x656D6265  # advisory lock id ("embe") serialising schema and partition creation between recorders
_COLUMNS = ("fleet text NOT NULL, device text NOT NULL, channel text NOT NULL, seq bigint NOT NULL, "
            "ts timestamptz NOT NULL, received timestamptz NOT NULL, body jsonb NOT NULL, "
            "PRIMARY KEY (fleet, device, seq, ts)")
_STATUS = ("CREATE TABLE IF NOT EXISTS ember_status (fleet text NOT NULL, device text NOT NULL, state text, "
           "received timestamptz NOT NULL, PRIMARY KEY (fleet, device))")
_INDEX = "CREATE INDEX IF NOT EXISTS ember_history_device_ts ON ember_history (device, ts)"
_STAGE = ("CREATE TEMP TABLE IF NOT EXISTS ember_stage (fleet text, device text, channel text, seq bigint, "
          "ts float8, received float8, body text) ON COMMIT DELETE ROWS")
_MOVE = ("INSERT INTO ember_history SELECT fleet, device, channel, seq, to_timestamp(ts), to_timestamp(received), "
         "body::jsonb FROM ember_stage ON CONFLICT DO NOTHING")
_UPSERT = ("INSERT INTO ember_status VALUES (%s, %s, %s, to_timestamp(%s)) ON CONFLICT (fleet, device) "
           "DO UPDATE SET state = EXCLUDED.state, received = EXCLUDED.received")
_SANE = (946684800.0, 4102444800.0)  # 2000 .. 2100: a ts outside is a broken clock; the receive time is used


def row_time(r: Row) -> float:
    """The time a row is partitioned and indexed by: the device's ``ts``, or the receive time when
    the message has none or an impossible one."""
    return r.ts if r.ts is not None and _SANE[0] <= r.ts < _SANE[1] else r.received


def partition_name(day: int) -> str:
    return "ember_history_" + datetime.fromtimestamp(day * DAY, timezone.utc).strftime("%Y%m%d")


class PgStore:
    """A connection to PostgreSQL that creates the schema, writes batches and reads history
    (``readonly``: only reads, creates nothing, so a read-only role will do)."""

    def __init__(self, url: str, connect_timeout: int = 5, readonly: bool = False) -> None:
        self.url, self.connect_timeout, self.readonly = url, connect_timeout, readonly
        self.where = url.split("@")[-1]  # no credentials in messages
        self.conn: psycopg.Connection[Any] | None = None
        self.layout = ""  # "partitioned" or "hypertable"
        self.partitions: set[str] = set()
        self.rejected = 0
        self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        if self.conn is not None and not self.conn.closed:
            return self.conn
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=self.connect_timeout)
        except psycopg.Error as e:
            raise TelemetryError(f"PostgreSQL {self.where}: cannot connect ({_first_line(e)}); "
                                 "check --db and that the server runs") from None
        if self.readonly:
            self.conn = conn
            return conn
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
                self.layout = _create_schema(conn)
            conn.execute(_STAGE)
            self.partitions = {r[0] for r in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'ember_history'::regclass")}
        except psycopg.Error as e:
            conn.close()
            raise TelemetryError(f"PostgreSQL {self.where}: cannot create the schema ({_first_line(e)})") from None
        self.conn = conn
        return conn

    def _ensure_partitions(self, conn: psycopg.Connection[Any], rows: list[Row]) -> None:
        if self.layout != "partitioned":
            return
        days = {int(row_time(r) // DAY) for r in rows}
        missing = {d for d in days if partition_name(d) not in self.partitions}
        if not missing:
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            for d in sorted(missing):
                lo, hi = (datetime.fromtimestamp(x * DAY, timezone.utc).isoformat() for x in (d, d + 1))
                conn.execute(f"CREATE TABLE IF NOT EXISTS {partition_name(d)} PARTITION OF ember_history "
                             f"FOR VALUES FROM ('{lo}') TO ('{hi}')")
        self.partitions |= {partition_name(d) for d in missing}

    def write(self, rows: list[Row], statuses: list[Status]) -> int:
        """Store a batch in one transaction; returns the number of new rows (duplicates are dropped).
        A message PostgreSQL refuses (say a JSON escape that jsonb rejects) must not block the others:
        then the batch is written one row at a time and the refused ones are counted in ``rejected``."""
        try:
            conn = self._connect()
            self._ensure_partitions(conn, rows)
            try:
                return self._write_batch(conn, rows, statuses)
            except psycopg.DataError:
                return self._write_one_by_one(conn, rows, statuses)
        except psycopg.Error as e:
            self.close()
            raise TelemetryError(f"PostgreSQL {self.where}: cannot write ({_first_line(e)}); "
                                 "messages stay buffered, retrying") from None

    def _write_batch(self, conn: psycopg.Connection[Any], rows: list[Row], statuses: list[Status]) -> int:
        with conn.transaction(), conn.cursor() as cur:
            stored = 0
            if rows:
                with cur.copy("COPY ember_stage FROM STDIN") as cp:
                    for r in rows:
                        cp.write_row((r.fleet, r.device, r.channel, r.seq, row_time(r), r.received, r.body))
                cur.execute(_MOVE)
                stored = cur.rowcount
            last = {(s.fleet, s.device): s for s in statuses}  # one upsert per device per statement
            if last:
                cur.executemany(_UPSERT, [(s.fleet, s.device, s.state, s.received) for s in last.values()])
        return stored

    def _write_one_by_one(self, conn: psycopg.Connection[Any], rows: list[Row], statuses: list[Status]) -> int:
        stored = 0
        for r in rows:
            try:
                stored += self._write_batch(conn, [r], [])
            except psycopg.DataError as e:
                self.rejected += 1
                log.warning("PostgreSQL refused the message %s/%s seq %s (%s); skipped", r.fleet, r.device, r.seq,
                            _first_line(e))
        return stored + self._write_batch(conn, [], statuses)

    def history(self, device: str | None = None, since: float | None = None,
                fleet: str | None = None) -> list[dict[str, Any]]:
        """Rows oldest first as ``{"device", "channel", "seq", "ts", "body"}`` (``ts`` in epoch seconds)."""
        sql, args = ("SELECT device, channel, seq, extract(epoch FROM ts)::float8, body FROM ember_history "
                     "WHERE true"), []
        for cond, value in (("fleet = %s", fleet), ("device = %s", device), ("ts >= to_timestamp(%s)", since)):
            if value is not None:
                sql, args = f"{sql} AND {cond}", [*args, value]
        try:
            cur = self._connect().execute(sql + " ORDER BY ts, seq", args)  # type: ignore[arg-type]
            return [{"device": d, "channel": c, "seq": s, "ts": t, "body": b} for d, c, s, t, b in cur]
        except psycopg.errors.UndefinedTable:
            self.close()
            raise TelemetryError(f"PostgreSQL {self.where} holds no Ember recording (no table ember_history): "
                                 "'ember fleet record --db URL' creates it") from None
        except psycopg.Error as e:
            self.close()
            raise TelemetryError(f"PostgreSQL {self.where}: cannot read history ({_first_line(e)})") from None

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()


def _create_schema(conn: psycopg.Connection[Any]) -> str:
    """Create the tables unless they exist; returns the layout of ``ember_history``."""
    kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'ember_history' AND "
                        "relnamespace = current_schema()::regnamespace").fetchone()
    if kind is None:
        if _timescale(conn):
            conn.execute(f"CREATE TABLE ember_history ({_COLUMNS})")
            conn.execute("SELECT create_hypertable('ember_history', 'ts', chunk_time_interval => interval '1 day')")
        else:
            conn.execute(f"CREATE TABLE ember_history ({_COLUMNS}) PARTITION BY RANGE (ts)")
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'ember_history'").fetchone()
    conn.execute(_INDEX)
    conn.execute(_STATUS)
    return "partitioned" if kind and kind[0] == "p" else "hypertable"


def _timescale(conn: psycopg.Connection[Any]) -> bool:
    """True when TimescaleDB is (or can be) installed in this database. It must be preloaded by the
    server (``shared_preload_libraries``); if CREATE EXTENSION fails, plain partitioning is used."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone():
        return True
    if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone():
        return False
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        return True
    except psycopg.Error:
        return False


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]

