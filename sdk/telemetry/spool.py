"""The store-and-forward spool: every outgoing message is committed here before it is sent and
deleted only when the broker acknowledges it.

SQLite in WAL mode with ``synchronous=FULL``: a commit is durable when ``put`` returns, a crash or
SIGKILL at any moment leaves the last committed state (the WAL is replayed on open), deletes by id
(acks arrive per message) are cheap, and readers (``ember fleet report --spool``) can open it while a
device writes. The message id is ``INTEGER PRIMARY KEY AUTOINCREMENT``, so it is never reused and
serves as the persistent, monotonically increasing sequence number. Each row carries a CRC-32 of its
payload; ``verify()`` checks them and SQLite's own structure.

Bounded by ``max_bytes``: of payload, and of the spool's real disk use (database + WAL + shared
memory file + loss ledger; at least ``MIN_DISK_BYTES`` for SQLite's own pages). The WAL is checkpointed every few
pages and truncated (``journal_size_limit``) so it stays a small, fixed part of the budget. When full,
the oldest ``telemetry`` rows go first (counted); if only ``drift``/``event`` rows remain, policy
``drop_oldest`` deletes the oldest of those (counted as ``lost_critical`` and reported), policy
``refuse`` rejects the new message (counted as ``refused``).

Loss counters persist. One that cannot be written to the database (the disk is full) goes to a small
pre-allocated side file, ``<spool>-loss``, rewritten in place (no new blocks needed), and is merged
back on the next successful write or the next open: a run that lost messages to a full disk leaves
the count behind, and it travels in the next message (``stats()`` is in every telemetry sample). A
WAL damaged in the middle (SQLite would silently drop every commit after the damage) is detected at
open and the dropped commits counted as ``wal_lost``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdk.errors import TelemetryError
from sdk.telemetry.wal import lost_commits
from sdk.util.jsonutil import dumps

log = logging.getLogger(__name__)

CRITICAL = ("drift", "event")
COUNTERS = ("dropped_telemetry", "lost_critical", "refused", "disk_full", "denied", "corrupt", "wal_lost")
MIN_DISK_BYTES = 256 * 1024  # SQLite's fixed pages + the shared-memory file + a minimal WAL
_SHM_BYTES = 32 * 1024
_LEDGER_BYTES = 4096
_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,
  kind TEXT NOT NULL, qos INTEGER NOT NULL, payload BLOB NOT NULL, crc INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Spooled:
    """One spooled message; ``id`` is its sequence number."""

    id: int
    topic: str
    kind: str
    qos: int
    payload: bytes
    created: float


class Spool:
    """A bounded, crash-safe FIFO of MQTT messages (thread-safe; one writing process per file)."""

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = 64 * 1024 * 1024,
                 full_policy: str = "drop_oldest") -> None:
        self.path = Path(path)
        self.max_bytes = int(max_bytes)
        self.full_policy = full_policy
        self._lock = threading.RLock()
        self._unsaved: set[str] = set()
        wal_lost = lost_commits(self.path)  # before SQLite opens it and drops the damaged part
        self._db = _connect(self.path)
        self._ledger: _Ledger | None = None
        try:
            self._limits()
            self._load_state()
            self._ledger = _Ledger(Path(f"{self.path}-loss"))
            self._recover(wal_lost)
        except sqlite3.Error as e:
            self._db.close()
            if self._ledger is not None:
                self._ledger.close()
            raise TelemetryError(f"spool {self.path}: not a usable spool ({e}); move it away or point "
                                 "telemetry.spool at a new file") from None

    def _limits(self) -> None:
        """Split the disk budget: shared memory, a WAL checkpointed every ``wal_pages``, the database."""
        page = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        disk = max(self.max_bytes, MIN_DISK_BYTES)
        wal_pages = max(4, min(256, disk // 16 // page))
        wal_bytes = 32 + (wal_pages + 16) * (page + 24)  # a checkpoint runs after the commit that passes it
        self._db.execute(f"PRAGMA wal_autocheckpoint = {wal_pages}")
        self._db.execute(f"PRAGMA journal_size_limit = {wal_pages * (page + 24) + 32}")
        self._page, self._db_pages, self.disk_budget = page, (disk - _SHM_BYTES - _LEDGER_BYTES - wal_bytes) // page, disk

    def _recover(self, wal_lost: int) -> None:
        """Merge loss counts the ledger kept while the disk was full; count commits a damaged WAL lost."""
        for name, value in self._ledger.read().items():  # type: ignore[union-attr]
            if value > self.counters.get(name, 0):
                self.counters[name] = value
                self._unsaved.add(name)
        if wal_lost:
            log.error("spool %s: the write-ahead log was damaged; %d committed transaction(s) after the "
                      "damage are lost", self.path, wal_lost)
            self.counters["wal_lost"] = self.counters.get("wal_lost", 0) + wal_lost
            self._unsaved.add("wal_lost")
            self._save_ledger()
        if self._unsaved:
            with self._lock:
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._flush_unsaved()
                    self._db.execute("COMMIT")
                    self._unsaved.clear()
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the damaged log is gone: count once
                except sqlite3.OperationalError:
                    self._rollback()  # still full: the ledger keeps them

    def _load_state(self) -> None:
        with self._lock:
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT COALESCE(SUM(length(payload)), 0), COUNT(*) FROM messages").fetchone()
            self.bytes, self.count = int(row[0]), int(row[1])
            seq = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
            self._next_id = (int(seq[0]) if seq else 0) + 1
            self.counters = {name: 0 for name in COUNTERS}
            self.counters.update(dict(self._db.execute("SELECT name, value FROM counters").fetchall()))

    def put(self, topic: str, kind: str, body: dict[str, Any], qos: int = 1) -> int | None:
        """Commit one message; ``body`` gets ``"seq"`` = the returned id. None when refused or the
        disk is full (both counted in ``counters``)."""
        with self._lock:
            seq = self._next_id
            payload = dumps({**body, "seq": seq}, separators=(",", ":")).encode()
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._flush_unsaved()
                room = self._make_room(len(payload), kind)
                if room:
                    self._db.execute("INSERT INTO messages (id, topic, kind, qos, payload, crc, created) "
                                     "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                     (seq, topic, kind, qos, payload, zlib.crc32(payload), time.time()))
                self._db.execute("COMMIT")
                self._unsaved.clear()
            except sqlite3.OperationalError as e:
                self._rollback()
                self._unsaved.update(self.counters)  # whatever this transaction counted is not on disk
                if "full" in str(e):
                    self._bump_memory("disk_full")
                    return None
                self._save_ledger()
                raise TelemetryError(f"spool {self.path}: cannot write ({e})") from None
            if not room:
                return None
            self._next_id = seq + 1
            self.bytes += len(payload)
            self.count += 1
            return seq

    def _make_room(self, size: int, kind: str) -> bool:
        while self._over(size):
            if self._drop_oldest(("telemetry",)):
                continue
            if kind == "telemetry":
                self._bump("dropped_telemetry")
                return False
            if self.full_policy == "refuse" or not self._drop_oldest(CRITICAL, counter="lost_critical"):
                self._bump("refused")
                return False
        return True

    def _over(self, size: int) -> bool:
        """Whether a ``size``-byte payload would pass ``max_bytes`` of payload or the database's pages."""
        if self.bytes + size > self.max_bytes:
            return True
        pages, free = (int(self._db.execute(f"PRAGMA {p}").fetchone()[0]) for p in ("page_count", "freelist_count"))
        return pages - free + 1 + (size + 256) // (self._page - 128) > self._db_pages

    def _flush_unsaved(self) -> None:
        """Write counters the disk refused earlier (absolute values: writing twice is harmless)."""
        for name in sorted(self._unsaved):
            self._db.execute("INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE "
                             "SET value = MAX(value, excluded.value)", (name, self.counters.get(name, 0)))

    def _drop_oldest(self, kinds: tuple[str, ...], counter: str = "dropped_telemetry") -> bool:
        marks = ",".join("?" * len(kinds))
        row = self._db.execute(f"SELECT id, length(payload) FROM messages WHERE kind IN ({marks}) "
                               "ORDER BY id LIMIT 1", kinds).fetchone()
        if row is None:
            return False
        self._db.execute("DELETE FROM messages WHERE id = ?", (row[0],))
        self.bytes -= int(row[1])
        self.count -= 1
        self._bump(counter)
        return True

    def _bump(self, name: str, n: int = 1) -> None:
        """Count inside the caller's transaction."""
        self.counters[name] = self.counters.get(name, 0) + n
        self._db.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                         "ON CONFLICT(name) DO UPDATE SET value = excluded.value", (name, self.counters[name]))

    def _bump_memory(self, name: str, n: int = 1) -> None:
        """Count what the database cannot take now: kept in the ledger, written at the next commit."""
        self.counters[name] = self.counters.get(name, 0) + n
        self._unsaved.add(name)
        self._save_ledger()

    def _save_ledger(self) -> None:
        if self._ledger is not None:
            self._ledger.write(self.counters)

    def count_event(self, name: str, n: int = 1) -> None:
        """Add ``n`` to a persistent counter (e.g. ``denied``)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._bump(name, n)
                self._db.execute("COMMIT")
            except sqlite3.OperationalError:
                self._rollback()
                self._bump_memory(name, n)

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.OperationalError:
            pass

    def pending(self, after: int = 0, limit: int = 64) -> list[Spooled]:
        """Up to ``limit`` messages with id > ``after``, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT id, topic, kind, qos, payload, crc, created FROM messages "
                                    "WHERE id > ? ORDER BY id LIMIT ?", (after, limit)).fetchall()
        out = []
        for id_, topic, kind, qos, payload, crc, created in rows:
            if zlib.crc32(payload) != crc:
                self._quarantine(id_)
                continue
            out.append(Spooled(id_, topic, kind, qos, bytes(payload), created))
        return out

    def _quarantine(self, id_: int) -> None:
        """Delete a row whose CRC does not match, keeping ``bytes``/``count`` and ``corrupt`` in step."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute("SELECT length(payload) FROM messages WHERE id = ?", (id_,)).fetchone()
                if row is not None:
                    self._db.execute("DELETE FROM messages WHERE id = ?", (id_,))
                    self._bump("corrupt")
                self._db.execute("COMMIT")
            except sqlite3.OperationalError:
                self._rollback()
                self._bump_memory("corrupt")
                return
            if row is not None:
                self.bytes -= int(row[0])
                self.count -= 1

    def ack(self, ids: Iterable[int]) -> int:
        """Delete acknowledged messages (one transaction); returns how many were still there."""
        ids = list(ids)
        if not ids:
            return 0
        with self._lock:
            marks = ",".join("?" * len(ids))
            try:
                self._db.execute("BEGIN IMMEDIATE")
                size, n = self._db.execute(f"SELECT COALESCE(SUM(length(payload)), 0), COUNT(*) FROM messages "
                                           f"WHERE id IN ({marks})", ids).fetchone()
                self._db.execute(f"DELETE FROM messages WHERE id IN ({marks})", ids)
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as e:
                self._rollback()
                raise TelemetryError(f"spool {self.path}: cannot delete acknowledged messages ({e})") from None
            self.bytes -= int(size)
            self.count -= int(n)
            return int(n)

    def disk_bytes(self) -> int:
        """Bytes the spool's files take on disk now (database, WAL, shared memory, loss ledger)."""
        total = 0
        for suffix in ("", "-wal", "-shm", "-loss"):
            with contextlib.suppress(OSError):
                total += os.stat(f"{self.path}{suffix}").st_size
        return total

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"messages": self.count, "bytes": self.bytes, "max_bytes": self.max_bytes,
                    "disk_bytes": self.disk_bytes(), "next_seq": self._next_id, **self.counters}

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._ledger is not None:
                self._ledger.close()


class _Ledger:
    """``<spool>-loss``: loss counters as one CRC-checked JSON line in a pre-allocated 4 KiB file,
    rewritten in place (with fsync), so it can be updated when the disk has no free block left."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            if os.fstat(self._fd).st_size < _LEDGER_BYTES:
                os.posix_fallocate(self._fd, 0, _LEDGER_BYTES)
                os.pwrite(self._fd, b" " * _LEDGER_BYTES, 0)
                os.fsync(self._fd)
        except OSError as e:  # opened on a full disk: counts stay in memory until the next commit
            log.warning("spool ledger %s unavailable (%s): loss counts kept in memory only", path, e.strerror)
            self.close()

    def read(self) -> dict[str, int]:
        if self._fd is None:
            return {}
        try:
            line = os.pread(self._fd, _LEDGER_BYTES, 0).split(b"\n", 1)[0]
            crc, _, body = line.strip().partition(b" ")
            if not body or int(crc) != zlib.crc32(body):
                return {}
            data = json.loads(body)
        except (OSError, ValueError):
            return {}
        return {str(k): int(v) for k, v in data.items() if isinstance(v, int)} if isinstance(data, dict) else {}

    def write(self, counters: dict[str, int]) -> None:
        if self._fd is None:
            return
        body = json.dumps(counters, sort_keys=True, separators=(",", ":")).encode()
        line = f"{zlib.crc32(body)} ".encode() + body + b"\n"
        try:
            os.pwrite(self._fd, line.ljust(_LEDGER_BYTES, b" ")[:_LEDGER_BYTES], 0)
            os.fsync(self._fd)
        except OSError as e:
            log.warning("spool ledger %s: cannot write (%s)", self.path, e.strerror)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _connect(path: Path) -> sqlite3.Connection:
    db = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db
    except (sqlite3.Error, OSError) as e:
        if db is not None:
            db.close()
        raise TelemetryError(f"spool {path}: cannot open ({e}); check the path and that the disk is writable "
                             "(telemetry.spool)") from None


def verify(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Check a spool file: SQLite integrity plus every row's CRC. Returns
    ``{"ok", "integrity", "messages", "corrupt_ids", "ids"}``; raises TelemetryError if unreadable."""
    rows = read_messages(path, with_crc=True)
    try:
        with contextlib.closing(sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)) as db:
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.Error as e:
        raise TelemetryError(f"spool {path}: integrity check failed ({e})") from None
    bad = [r["id"] for r in rows if not r["crc_ok"]]
    return {"ok": integrity == "ok" and not bad, "integrity": integrity, "messages": len(rows),
            "corrupt_ids": bad, "ids": [r["id"] for r in rows]}


def read_messages(path: str | os.PathLike[str], with_crc: bool = False) -> list[dict[str, Any]]:
    """All messages in a spool file, oldest first, as dicts with the decoded JSON ``body``."""
    p = Path(path)
    if not p.is_file():
        raise TelemetryError(f"spool {p} does not exist (telemetry.spool names it)")
    try:
        with contextlib.closing(sqlite3.connect(str(p), timeout=10)) as db:
            rows = db.execute("SELECT id, topic, kind, qos, payload, crc, created FROM messages ORDER BY id").fetchall()
    except sqlite3.DatabaseError as e:
        raise TelemetryError(f"spool {p}: not a readable spool ({e})") from None
    out = []
    for id_, topic, kind, qos, payload, crc, created in rows:
        ok = zlib.crc32(payload) == crc
        try:
            body = json.loads(payload) if ok else None
        except ValueError:
            body, ok = None, False
        rec = {"id": id_, "topic": topic, "kind": kind, "qos": qos, "created": created, "body": body}
        if with_crc:
            rec["crc_ok"] = ok
        out.append(rec)
    return out
