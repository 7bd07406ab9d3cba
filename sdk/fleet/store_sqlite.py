"""SQLite storage for ``ember fleet record --db FILE`` (a laptop-sized fleet): one row per
``(device, seq)`` in ``history``, the last ``status`` per device."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sdk.errors import TelemetryError

if TYPE_CHECKING:
    from sdk.fleet.record import Row, Status

_SCHEMA = """
CREATE TABLE IF NOT EXISTS history (device TEXT NOT NULL, channel TEXT NOT NULL, seq INTEGER NOT NULL,
  ts REAL, received REAL NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (device, seq));
CREATE TABLE IF NOT EXISTS status (device TEXT PRIMARY KEY, state TEXT, received REAL);
"""


class SqliteStore:
    """A recording file; ``write`` stores a batch in one transaction and returns how many rows were new."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.rejected = 0  # SQLite stores any valid JSON
        try:
            self.db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        except sqlite3.Error as e:
            raise TelemetryError(f"recording {self.path}: cannot open ({e})") from None
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            self.db.close()
            raise TelemetryError(f"recording {self.path}: cannot open ({e})") from None

    def write(self, rows: list[Row], statuses: list[Status]) -> int:
        try:
            before = self.db.total_changes
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR IGNORE INTO history VALUES (?, ?, ?, ?, ?, ?)",
                                [(r.device, r.channel, r.seq, r.ts, r.received, r.body) for r in rows])
            stored = self.db.total_changes - before
            self.db.executemany("INSERT OR REPLACE INTO status VALUES (?, ?, ?)",
                                [(s.device, s.state, s.received) for s in statuses])
            self.db.execute("COMMIT")
        except sqlite3.Error as e:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise TelemetryError(f"recording {self.path}: cannot write ({e}); kept in memory, retrying") from None
        return stored

    def history(self, device: str | None = None, since: float | None = None,
                fleet: str | None = None) -> list[dict[str, Any]]:
        return read_history(self.db, device, since, fleet) or []

    def close(self) -> None:
        self.db.close()


def read_history(db: sqlite3.Connection, device: str | None = None, since: float | None = None,
                 fleet: str | None = None) -> list[dict[str, Any]] | None:
    """Rows of a recording oldest first, or None when ``db`` is not a recording (no ``history`` table).
    SQLite recordings hold no fleet column: ``fleet`` filters on the message body."""
    if not db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='history'").fetchone():
        return None
    sql, args = "SELECT device, channel, seq, ts, payload FROM history WHERE 1=1", []
    if device is not None:
        sql, args = sql + " AND device = ?", [*args, device]
    if since is not None:
        sql, args = sql + " AND ts >= ?", [*args, since]
    rows = [{"device": d, "channel": c, "seq": s, "ts": t, "body": json.loads(b)}
            for d, c, s, t, b in db.execute(sql + " ORDER BY ts, seq", args)]
    return rows if fleet is None else [r for r in rows if r["body"].get("fleet") == fleet]
