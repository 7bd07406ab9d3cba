"""``ember fleet record``: keep the fleet's messages, once per ``(device, seq)``, in SQLite (a file:
a laptop-sized fleet) or PostgreSQL (a ``postgresql://`` URL: partitioned by time, batched), and
read history back from a recording or a device spool.

The recorder acknowledges a QoS 1 message to the broker only once its batch is committed
(MQTT v5 manual acks; Receive Maximum = the buffer size), so a vanished database costs no message:
the batch stays buffered and is retried, and the broker holds the rest.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from sdk.errors import TelemetryError
from sdk.fleet.store_sqlite import SqliteStore, read_history
from sdk.telemetry.settings import TelemetrySettings
from sdk.telemetry.spool import read_messages

log = logging.getLogger(__name__)


class Row(NamedTuple):
    fleet: str
    device: str
    channel: str
    seq: int
    ts: float | None
    received: float
    body: str  # the payload as received (valid JSON)


class Status(NamedTuple):
    fleet: str
    device: str
    state: str | None
    received: float


class Store(Protocol):
    rejected: int  # rows the database refused (counted, skipped)

    def write(self, rows: list[Row], statuses: list[Status]) -> int: ...
    def history(self, device: str | None = None, since: float | None = None,
                fleet: str | None = None) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


def parse(topic: str, payload: bytes, now: float) -> Row | Status | None:
    """A message of ``ember/<fleet>/<device>/<channel>`` as a Row (needs an integer ``seq``) or a
    Status; None for anything else."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != "ember":
        return None
    try:
        text = payload.decode()
        body = _DECODER.decode(text)
    except (ValueError, UnicodeDecodeError):
        return None
    if "\\u0000" in text:  # valid JSON, but no database text type holds a NUL
        return None
    if parts[3] == "status":
        return Status(parts[1], parts[2], body.get("state") if isinstance(body, dict) else str(body), now)
    if not isinstance(body, dict) or not isinstance(body.get("seq"), int):
        return None
    ts = body.get("ts")
    return Row(parts[1], parts[2], parts[3], body["seq"], ts if isinstance(ts, (int, float)) else None, now, text)


def is_url(db: object) -> bool:
    """True for a PostgreSQL URL (psycopg is imported only then)."""
    return isinstance(db, str) and db.startswith(("postgresql://", "postgres://"))


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")  # json.loads would accept NaN and Infinity


_DECODER = json.JSONDecoder(parse_constant=_no_constant)  # one decoder: json.loads(..., **kw) builds one per call


def open_store(db: str | os.PathLike[str]) -> Store:
    """A PostgreSQL store for a ``postgresql://`` URL, else a SQLite recording file."""
    if is_url(db):
        from sdk.fleet.store_pg import PgStore

        return PgStore(str(db))
    return SqliteStore(db)


class HistoryDB:
    """A recording in SQLite (a path) or PostgreSQL (a URL): ``add(topic, payload)`` stores a message
    once (duplicates are ignored), ``write(messages)`` a batch, ``history()`` reads it back."""

    def __init__(self, db: str | os.PathLike[str]) -> None:
        self.db = db
        self.store = open_store(db)
        self.lock = threading.Lock()
        self.stored = 0
        self.duplicates = 0
        self.rejected = 0

    def add(self, topic: str, payload: bytes) -> bool:
        m = parse(topic, payload, time.time())
        return m is not None and (self.write([m]) == 1 or isinstance(m, Status))

    def write(self, messages: list[Row | Status]) -> int:
        """Store parsed messages in one transaction; returns how many rows were new."""
        rows = [m for m in messages if isinstance(m, Row)]
        with self.lock:
            before = self.store.rejected
            new = self.store.write(rows, [m for m in messages if isinstance(m, Status)])
            rejected = self.store.rejected - before
            self.stored += new
            self.rejected += rejected
            self.duplicates += len(rows) - new - rejected
        return new

    def history(self, device: str | None = None, since: float | None = None,
                fleet: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return self.store.history(device, since, fleet)

    def close(self) -> None:
        self.store.close()


class Recorder:
    """Subscribes to a fleet and writes its messages in batches of ``batch`` or every ``flush_ms``.

    QoS 0 messages beyond ``max_buffer`` waiting in memory are dropped and counted; QoS 1 messages
    never are: the broker sends at most ``max_buffer`` unacknowledged ones (MQTT v5 Receive Maximum). ``client_id`` given: the broker
    keeps the session for ``session_expiry_s`` so a restarted recorder resumes where it stopped.
    """

    def __init__(self, settings: TelemetrySettings, db: str | os.PathLike[str], shared: str = "",
                 batch: int = 1000, flush_ms: float = 100.0, max_buffer: int = 50_000, client_id: str = "",
                 session_expiry_s: int = 3600) -> None:
        from sdk.fleet.watch import FleetSubscriber

        self.batch, self.flush_s, self.max_buffer = max(1, batch), flush_ms / 1000, max_buffer
        self.history = HistoryDB(db)
        self.sub = FleetSubscriber(settings, lambda t, p: None, client_id=client_id, shared=shared,
                                   receive_max=max_buffer, session_expiry_s=session_expiry_s if client_id else 0)
        self.sub.client.manual_ack_set(True)
        self.sub.client.on_raw = self._on_message  # type: ignore[attr-defined] # a BufferedClient
        self.sub.client.on_message = lambda c, u, m: self._on_message(m.topic, m.payload, m.mid, m.qos)
        self.buf: deque[tuple[str, bytes, int, int, int, float]] = deque()
        self.counts = {"received": 0, "invalid": 0, "dropped": 0, "db_errors": 0, "batches": 0}
        self.lags: deque[float] = deque(maxlen=200_000)
        self.last_error = ""
        self.last_commit = 0.0
        self._wake, self._stop, self._give_up = threading.Event(), threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="ember-recorder", daemon=True)

    def start(self) -> Recorder:
        self._thread.start()
        try:
            self.sub.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _on_message(self, topic: str, payload: bytes, mid: int, qos: int) -> None:
        if len(self.buf) >= self.max_buffer and not qos:
            self.counts["dropped"] += 1
            if self.counts["dropped"] in (1, 1000, 100_000):
                log.error("recorder buffer full (%d messages): dropped %d so far; the database is too slow or "
                          "down", self.max_buffer, self.counts["dropped"])
            return
        self.buf.append((topic, payload, mid, qos, self.sub.connects, time.time()))
        self.counts["received"] += 1
        if len(self.buf) >= self.batch:
            self._wake.set()

    def _run(self) -> None:
        backoff = 0.2
        while (self.buf or not self._stop.is_set()) and not self._give_up.is_set():
            if not self.buf or (len(self.buf) < self.batch and not self._stop.is_set()
                                and self.buf[0][5] + self.flush_s > time.time()):
                self._wake.wait(self.buf[0][5] + self.flush_s - time.time() if self.buf else self.flush_s)
                self._wake.clear()
                continue
            items = list(itertools.islice(self.buf, self.batch))
            try:
                self._write(items)
            except TelemetryError as e:
                self.counts["db_errors"] += 1
                if str(e) != self.last_error:
                    log.error("%s (recorder: %d messages buffered, retrying)", e, len(self.buf))
                self.last_error = str(e)
                if self._give_up.wait(backoff):
                    return
                backoff = min(backoff * 2, 5.0)
                continue
            if self.last_error:
                log.warning("recorder: database back, %d messages buffered", len(self.buf))
                self.last_error = ""
            backoff = 0.2
            for _ in items:
                self.buf.popleft()

    def _write(self, items: list[tuple[str, bytes, int, int, int, float]]) -> None:
        parsed = [parse(t, p, received) for t, p, _, _, _, received in items]
        self.history.write([m for m in parsed if m is not None])
        self.counts["invalid"] += sum(m is None for m in parsed)
        self.counts["batches"] += 1
        done = self.last_commit = time.time()
        self.lags.extend(done - m.ts for m in parsed if isinstance(m, Row) and m.ts is not None)
        gen = self.sub.connects
        for _, _, mid, qos, g, _ in items:
            if qos and g == gen:  # a mid from an earlier connection means nothing now
                self.sub.client.ack(mid, qos)

    def stop(self, drain_s: float = 10.0) -> dict[str, Any]:
        """Stop taking messages, write what is buffered (retrying for up to ``drain_s``), disconnect.

        With a kept session (``client_id``) the recorder disconnects first: the broker keeps the
        subscription, queues what comes meanwhile and re-sends what was not acknowledged."""
        durable = self.sub.clean_start is False
        with contextlib.suppress(Exception):
            if durable:
                self.sub.stop()
            else:
                self.sub.client.unsubscribe(self.sub.topic)
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(drain_s)
            self._give_up.set()
            self._thread.join(5)
        if not durable:
            self.sub.stop()
        self.history.close()
        return self.stats()

    def stats(self) -> dict[str, Any]:
        lags = sorted(self.lags)
        pick = (lambda q: round(lags[min(len(lags) - 1, int(q * len(lags)))], 4)) if lags else (lambda q: None)
        return {**self.counts, "stored": self.history.stored, "duplicates": self.history.duplicates,
                "rejected": self.history.rejected,
                "unsaved": len(self.buf), "lag_p50_s": pick(0.5), "lag_p95_s": pick(0.95)}


def record(settings: TelemetrySettings, db: str | os.PathLike[str], duration_s: float | None = None,
           shared: str = "", **options: Any) -> dict[str, Any]:
    """Record the fleet until Ctrl-C or ``duration_s``; ``options`` go to :class:`Recorder`."""
    rec = Recorder(settings, db, shared=shared, **options).start()
    end = None if duration_s is None else time.monotonic() + duration_s
    try:
        while end is None or time.monotonic() < end:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    return rec.stop()


def load_history(source: str | os.PathLike[str], device: str | None = None, since: float | None = None,
                 fleet: str | None = None) -> list[dict[str, Any]]:
    """Messages from a recording (``ember fleet record``: SQLite file or PostgreSQL URL) or a device
    spool, oldest first, as ``{"device", "channel", "seq", "ts", "body"}``; optionally only one
    device, one fleet, or those with ``ts >= since`` (epoch seconds)."""
    if is_url(source):
        from sdk.fleet.store_pg import PgStore

        store = PgStore(str(source), readonly=True)
        try:
            return store.history(device, since, fleet)
        finally:
            store.close()
    p = Path(source)
    if not p.is_file():
        raise TelemetryError(f"{p} does not exist: give a recording (ember fleet record --db) or a device spool")
    try:
        with contextlib.closing(sqlite3.connect(str(p))) as db:
            rows = read_history(db, device, since, fleet)
    except sqlite3.DatabaseError as e:
        raise TelemetryError(f"{p}: not an Ember recording or spool ({e})") from None
    if rows is not None:
        return rows
    out = []
    for m in read_messages(p):
        body = m["body"]
        if body is None:
            continue
        row = {"device": body.get("device", "?"), "channel": m["topic"].rsplit("/", 1)[-1],
               "seq": m["id"], "ts": body.get("ts", m["created"]), "body": body}
        if ((device is None or row["device"] == device) and (since is None or (row["ts"] or 0) >= since)
                and (fleet is None or body.get("fleet") == fleet)):
            out.append(row)
    return out
