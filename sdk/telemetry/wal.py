"""Find damage in a SQLite write-ahead log before SQLite opens it.

SQLite replays the WAL frames up to the first frame whose checksum fails and silently discards the
rest, so a damaged frame in the middle makes every later committed transaction vanish. This reads
the WAL as documented (https://www.sqlite.org/fileformat2.html#walformat): a 32-byte header (magic,
version, page size, checkpoint seq, salts, checksum) and frames of a 24-byte header (page number,
db size after commit or 0, salts, cumulative checksum) + one page. Frames whose salts match the
header belong to the current log; when committed transactions follow the first bad frame, each commit
frame from the bad one on is a transaction SQLite is about to drop. (A bad frame in the last
transaction alone is a write torn by a crash during that commit, which never returned: not counted.)
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

_MAGIC = {0x377F0682: "<", 0x377F0683: ">"}  # checksum word order: little / big endian


def _checksum(data: bytes, order: str, s0: int, s1: int) -> tuple[int, int]:
    words = np.frombuffer(data, dtype=np.dtype(order + "u4")).astype(np.uint64)
    mask = 0xFFFFFFFF
    for x0, x1 in zip(words[0::2].tolist(), words[1::2].tolist(), strict=True):
        s0 = (s0 + x0 + s1) & mask
        s1 = (s1 + x1 + s0) & mask
    return s0, s1


def lost_commits(db_path: str | os.PathLike[str]) -> int:
    """How many committed transactions in ``db_path``'s WAL lie at or after a damaged frame (0 when the
    log is intact, absent, or too damaged to tell: a broken header is SQLite's own error to report)."""
    wal = Path(f"{db_path}-wal")
    try:
        raw = wal.read_bytes()
    except OSError:
        return 0
    if len(raw) < 32:
        return 0
    magic, _version, page, _ckpt, salt1, salt2, c0, c1 = struct.unpack(">8I", raw[:32])
    order = _MAGIC.get(magic)
    if order is None or page < 512 or page & (page - 1) or _checksum(raw[:24], order, 0, 0) != (c0, c1):
        return 0
    s0, s1 = c0, c1
    frame = 24 + page
    bad = False
    commits = 0  # commit frames from the first bad frame on
    for off in range(32, len(raw) - frame + 1, frame):
        pgno, commit, f1, f2, k0, k1 = struct.unpack(">6I", raw[off:off + 24])
        if (f1, f2) != (salt1, salt2):
            continue  # a frame left over from an earlier log: normal
        if not bad:
            t0, t1 = _checksum(raw[off:off + 8] + raw[off + 24:off + frame], order, s0, s1)
            if (t0, t1) == (k0, k1) and pgno > 0:
                s0, s1 = t0, t1
                continue
            bad = True
        commits += commit > 0
    # Damage confined to the last transaction is a write torn by a crash during its commit (that put
    # never returned); damage with committed transactions after it is data loss.
    return commits if commits > 1 else 0
