"""Which thread runs which steps of a pipeline.

The steps are ``0`` (read the source), ``1..n`` (the stages) and ``n + 1`` (write the sinks). A
layout cuts them into consecutive segments; each segment is one thread, and a bounded queue joins
two segments. More threads than cores buy no parallelism, only hand-offs (a thread switch per item
and per queue on one core), so the default is:

* one CPU available: one thread runs everything in order, like a plain loop (a live source still
  gets its own reader thread, so late frames are dropped by the queue's policy, not lost in a
  driver's buffer);
* ``c`` CPUs: ``c + 1`` threads at most, one more than the cores so the source's reads (I/O,
  decoding outside the GIL) overlap the rest. Cuts go first after the source, then after each
  stage in order; the sinks share the last stage's thread unless every step has its own.

``Pipeline(threads=N)`` asks for ``N`` threads instead (at most one per step).
"""

from __future__ import annotations

import os


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def thread_count(n_stages: int, live: bool, threads: int | None = None, cpus: int | None = None) -> int:
    """How many threads run a pipeline of ``n_stages`` stages (see the module docstring)."""
    steps = n_stages + 2
    if threads is None:
        c = available_cpus() if cpus is None else cpus
        threads = 1 if c == 1 else c + 1
    return max(2 if live else 1, min(threads, steps))


def segments(n_stages: int, threads: int) -> list[tuple[int, int]]:
    """``threads`` consecutive ``(first, stop)`` step ranges covering steps ``0 .. n_stages + 1``."""
    steps = n_stages + 2
    threads = max(1, min(threads, steps))
    cut_order = [*range(1, n_stages + 1), n_stages + 1]  # after the source, after each stage, before sinks
    cuts = sorted(cut_order[: threads - 1])
    bounds = [0, *cuts, steps]
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
