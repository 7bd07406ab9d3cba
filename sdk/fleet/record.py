"""``ember fleet record``: keep the fleet's messages in SQLite (one row per ``(device, seq)``),
and read history back from a recording or from a device spool."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sdk.errors import TelemetryError
from sdk.telemetry.settings import TelemetrySettings
from sdk.telemetry.spool import read_messages

_SCHEMA = """
CREATE TABLE IF NOT EXISTS history (device TEXT NOT NULL, channel TEXT NOT NULL, seq INTEGER NOT NULL,
  ts REAL, received REAL NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (device, seq));
CREATE TABLE IF NOT EXISTS status (device TEXT PRIMARY KEY, state TEXT, received REAL);
"""


class HistoryDB:
    """A recording: ``add(topic, payload)`` stores a message once (duplicates are ignored)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
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
        self.lock = threading.Lock()
        self.stored = 0
        self.duplicates = 0

    def add(self, topic: str, payload: bytes) -> bool:
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != "ember":
            return False
        device, channel = parts[2], parts[3]
        now = time.time()
        try:
            body = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            return False
        with self.lock:
            if channel == "status":
                state = body.get("state") if isinstance(body, dict) else str(body)
                self.db.execute("INSERT OR REPLACE INTO status VALUES (?, ?, ?)", (device, state, now))
                return True
            if not isinstance(body, dict) or not isinstance(body.get("seq"), int):
                return False
            cur = self.db.execute("INSERT OR IGNORE INTO history VALUES (?, ?, ?, ?, ?, ?)",
                                  (device, channel, body["seq"], body.get("ts"), now, json.dumps(body)))
            if cur.rowcount:
                self.stored += 1
                return True
            self.duplicates += 1
            return False

    def close(self) -> None:
        self.db.close()


def record(settings: TelemetrySettings, db_path: str | os.PathLike[str], duration_s: float | None = None,
           shared: str = "") -> dict[str, int]:
    """Subscribe to the fleet and store every message until Ctrl-C or ``duration_s``."""
    from sdk.fleet.watch import FleetSubscriber

    db = HistoryDB(db_path)
    try:
        sub = FleetSubscriber(settings, db.add, shared=shared).start()
    except BaseException:
        db.close()
        raise
    end = None if duration_s is None else time.monotonic() + duration_s
    try:
        while end is None or time.monotonic() < end:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        sub.stop()
        db.close()
    return {"stored": db.stored, "duplicates": db.duplicates}


def load_history(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Messages from a recording (``ember fleet record``) or a device spool, oldest first, as
    ``{"device", "channel", "seq", "ts", "body"}``."""
    p = Path(path)
    if not p.is_file():
        raise TelemetryError(f"{p} does not exist: give a recording (ember fleet record --db) or a device spool")
    try:
        with contextlib.closing(sqlite3.connect(str(p))) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            rows = (db.execute("SELECT device, channel, seq, ts, payload FROM history ORDER BY ts, seq").fetchall()
                    if "history" in tables else None)
    except sqlite3.DatabaseError as e:
        raise TelemetryError(f"{p}: not an Ember recording or spool ({e})") from None
    if rows is not None:
        return [{"device": d, "channel": c, "seq": s, "ts": t, "body": json.loads(b)} for d, c, s, t, b in rows]
    out = []
    for m in read_messages(p):
        body = m["body"]
        if body is None:
            continue
        out.append({"device": body.get("device", "?"), "channel": m["topic"].rsplit("/", 1)[-1],
                    "seq": m["id"], "ts": body.get("ts", m["created"]), "body": body})
    return out
