"""Static arena planning: place activation buffers by lifetime, largest first, at the lowest offset that fits.

Buffers alive at the same time never share bytes, with one exception: an ``Overlap`` lets a layer's
output share bytes with an input it reads for the last time, as long as the output starts at most
``max_delta`` bytes after that input (``overlap.max_safe_delta`` proves the bound from the kernel).
Each such chain of buffers is placed as one unit with fixed relative offsets (output ``min(max_delta,
0)`` rounded down to the alignment from its input, which minimises the pair's span; for a kernel that
writes backwards, ``max(min_delta, 0)`` rounded up, so the chain can climb back); units are placed
largest first, each at the lowest aligned offset where none of its buffers meets a live buffer.
"""

from __future__ import annotations

from collections.abc import Iterable
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

    def overlaps_in_space(self, other: Buffer) -> bool:
        return self.offset < other.offset + other.size and other.offset < self.offset + self.size


@dataclass(frozen=True)
class Overlap:
    """Buffer ``output`` (written by the op that last reads ``input``) may share bytes with ``input``
    when ``output.offset - input.offset <= max_delta`` (a kernel writing in increasing address order:
    the output trails its input) or, with ``after``, when ``output.offset - input.offset >= max_delta``
    (a kernel writing in decreasing order: the output leads)."""

    input: int
    output: int
    max_delta: int
    after: bool = False

    def distance(self, align: int) -> int:
        """The output's offset from the input's that shares the most bytes, aligned."""
        if self.after:
            return align_up(max(self.max_delta, 0), align)
        return align_down(min(self.max_delta, 0), align)

    def allows(self, delta: int) -> bool:
        return delta >= self.max_delta if self.after else delta <= self.max_delta


def align_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def align_down(n: int, align: int) -> int:
    return n // align * align


def _units(buffers: list[Buffer], overlaps: Iterable[Overlap], align: int) -> list[list[tuple[Buffer, int]]]:
    """Chains of overlapping buffers as lists of (buffer, offset relative to the unit's start)."""
    by_id = {b.id: b for b in buffers}
    parent: dict[int, tuple[int, int]] = {}
    for o in overlaps:
        if o.output in parent or o.input not in by_id or o.output not in by_id:
            raise ValueError(f"bad overlap {o}: unknown buffer, or a second overlap for output {o.output}")
        parent[o.output] = (o.input, o.distance(align))
    head: dict[int, int] = {}
    rel: dict[int, int] = {}
    for b in sorted(buffers, key=lambda b: (b.first, b.id)):  # an op's input is written before its output
        if b.id in parent:
            p, delta = parent[b.id]
            if p not in rel:
                raise ValueError(f"overlap input {p} is written after its output {b.id}")
            head[b.id], rel[b.id] = head[p], rel[p] + delta
        else:
            head[b.id], rel[b.id] = b.id, 0
    units: dict[int, list[tuple[Buffer, int]]] = {}
    for b in buffers:
        units.setdefault(head[b.id], []).append((b, rel[b.id]))
    for members in units.values():
        low = min(r for _, r in members)
        members[:] = [(b, r - low) for b, r in members]
    return list(units.values())


def plan(buffers: list[Buffer], align: int = 8, overlaps: Iterable[Overlap] = ()) -> int:
    """Assign ``offset`` to every buffer; return the arena size in bytes."""
    placed: list[Buffer] = []

    def key(unit: list[tuple[Buffer, int]]) -> tuple[int, int, int]:
        return (-max(r + b.size for b, r in unit), min(b.first for b, _ in unit), min(b.id for b, _ in unit))

    for unit in sorted(_units(buffers, overlaps, align), key=key):
        forbidden = [(p.offset - b.size - r + 1, p.offset + p.size - r - 1)
                     for b, r in unit for p in placed if p.overlaps_in_time(b)]
        base = 0
        for lo, hi in sorted(forbidden):
            if lo > base:
                break
            if base <= hi:
                base = align_up(hi + 1, align)
        for b, r in unit:
            b.offset = base + r
            placed.append(b)
    return max((b.offset + b.size for b in buffers), default=0)


def check(buffers: list[Buffer], overlaps: Iterable[Overlap] = ()) -> None:
    """Raise AssertionError if two buffers alive at the same time share bytes, unless an ``Overlap``
    allows exactly that pair at that distance."""
    allowed = {(o.input, o.output): o for o in overlaps}
    for i, a in enumerate(buffers):
        for b in buffers[i + 1:]:
            if not (a.overlaps_in_time(b) and a.overlaps_in_space(b)):
                continue
            for src, dst in ((a, b), (b, a)):
                rule = allowed.get((src.id, dst.id))
                if rule is not None:
                    if rule.allows(dst.offset - src.offset):
                        break
                    raise AssertionError(f"buffer {dst.id} starts {dst.offset - src.offset} bytes after its "
                                         f"input {src.id}; its kernel is only safe "
                                         f"{'from' if rule.after else 'up to'} {rule.max_delta}")
            else:
                raise AssertionError(f"buffers {a.id} and {b.id} overlap")


def live_bytes(buffers: list[Buffer], step: int) -> int:
    """Arena bytes occupied at op ``step`` (overlapping buffers count once)."""
    spans = sorted((b.offset, b.offset + b.size) for b in buffers if b.first <= step <= b.last)
    total, end = 0, 0
    for lo, hi in spans:
        total += max(0, hi - max(lo, end))
        end = max(end, hi)
    return total
