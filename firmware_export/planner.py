"""Static arena planning: place activation buffers by lifetime, greedy by size, lowest offset that fits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Buffer:
    id: int
    size: int
    first: int  # index of the op that writes it
    last: int  # index of the last op that reads it
    offset: int = -1

    def overlaps_in_time(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last


def align_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def plan(buffers: list[Buffer], align: int = 8) -> int:
    """Assign ``offset`` to every buffer; return the arena size in bytes.

    Largest buffers first (ties: earliest first use); each goes to the lowest aligned offset that
    does not overlap, in address, any already placed buffer whose lifetime overlaps its own.
    """
    placed: list[Buffer] = []
    for buf in sorted(buffers, key=lambda b: (-b.size, b.first, b.id)):
        live = sorted((p for p in placed if p.overlaps_in_time(buf)), key=lambda p: p.offset)
        offset = 0
        for p in live:
            if offset + buf.size <= p.offset:
                break
            offset = max(offset, align_up(p.offset + p.size, align))
        buf.offset = offset
        placed.append(buf)
    return max((b.offset + b.size for b in buffers), default=0)


def check(buffers: list[Buffer]) -> None:
    """Raise AssertionError if two buffers alive at the same time share bytes (used by tests)."""
    for i, a in enumerate(buffers):
        for b in buffers[i + 1:]:
            if a.overlaps_in_time(b) and a.offset < b.offset + b.size and b.offset < a.offset + a.size:
                raise AssertionError(f"buffers {a.id} and {b.id} overlap")
