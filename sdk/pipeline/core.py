"""``Pipeline``: source → stages → sinks in threads joined by bounded queues.

Threads (``sdk.pipeline.layout``): the steps (read the source, each ``Stage``, write every sink)
are cut into consecutive segments, one thread each, chosen from the CPUs available: one thread on
one CPU (a live source keeps its own reader), ``cores + 1`` at most otherwise; ``threads=N`` asks
for ``N`` (``threads=n_stages + 2`` gives every step its own thread). Each step runs in exactly one
thread and every queue is FIFO, so items leave in source order (drops remove items, they never
reorder them). Each stage's input queue applies its policy wherever a thread boundary falls on it.
Shutdown:

* source end (or a source error): an ``END`` marker follows the last item; each thread drains its
  queue, passes the marker on and exits.
* ``stop()`` (any thread), Ctrl-C (SIGINT while ``run()`` runs in the main thread), a
  ``StopPipeline`` raised by a stage or sink, or a stage error with ``on_error="stop"``: every
  queue is closed at once, items still queued are counted as ``discarded``.

In every case the threads are joined and the source and sinks closed before ``run()``/``join()``
return; an error is then raised as ``PipelineError`` naming its stage.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from sdk.errors import ConfigError, EmberError, PipelineError
from sdk.events import EventBus, default_bus
from sdk.pipeline.gil import lower_switch_interval, restore_switch_interval
from sdk.pipeline.layout import segments, thread_count
from sdk.pipeline.packet import Packet, Stage, StopPipeline, sink_name
from sdk.pipeline.queues import END, StageQueue, resolve_policy
from sdk.pipeline.stats import PipelineStats, RateMeter, RollingWindow, stage_latencies
from sdk.sources.base import Source

log = logging.getLogger(__name__)

StageFns = list[tuple[Stage, Callable[[float], None]]]  # a thread's stages with their latency windows
SOURCE_GRACE_S = 1.0  # after stop(), how long a source blocked in a read gets before it is closed


class Pipeline:
    """Run ``source`` through ``stages`` into ``sinks``; see the module docstring for the threads.

    ``source``: a Source or a URI for ``open_source``. ``policy``: ``auto`` (``drop_oldest`` when
    ``source.meta["live"]``, else ``block``), ``block`` or ``drop_oldest``. ``on_error``: ``stop``
    (raise ``PipelineError`` from ``run``) or ``skip`` (drop the item, count it in
    ``stats().errors``). Every error is also published as a ``pipeline.error`` event on ``bus``
    (default: ``sdk.events.default_bus``; with ``skip`` at most one per stage per second).
    ``switch_interval``: the GIL switch interval (s) while running with more than one thread (see
    ``sdk.pipeline.gil``); None leaves the interpreter's setting alone. ``threads``: how many threads
    run the steps (None: chosen from the CPUs this process may use, see ``sdk.pipeline.layout``).
    """

    def __init__(self, source: Source | str, stages: Sequence[Stage] = (), sinks: Sequence[Any] = (),
                 policy: str = "auto", queue_size: int = 8, on_error: str = "stop",
                 bus: EventBus | None = None, name: str = "pipeline", stats_window: int = 512,
                 switch_interval: float | None = 0.001, threads: int | None = None) -> None:
        if isinstance(source, str):
            from sdk.sources.registry import open_source

            source = open_source(source)
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"threads must be a whole number >= 1 (or None for automatic), got {threads!r}")
        if on_error not in ("stop", "skip"):
            raise ConfigError(f"on_error must be 'stop' or 'skip', got {on_error!r}")
        names = [s.name for s in stages]
        if len(set(names)) != len(names) or any(n == "source" or n.startswith("sink:") for n in names):
            raise ConfigError(f"stage names must be unique and not 'source' or 'sink:*': {names}")
        self.source = source
        self.stages = list(stages)
        self.sinks = list(sinks)
        self._sink_names = [(sink_name(x), x) for x in self.sinks]
        self.on_error = on_error
        self.bus = bus if bus is not None else default_bus
        self.name = name
        self.switch_interval = switch_interval
        self.threads = threads
        self._lowered = False
        live = self._live = bool(source.meta.get("live", False))
        resolve_policy(policy, live)  # validates
        self._queues = [StageQueue(s.name, s.queue_size or queue_size, resolve_policy(s.policy or policy, live))
                        for s in self.stages]
        self._queues.append(StageQueue("sinks", queue_size, resolve_policy(policy, live)))
        self._windows = {s.name: RollingWindow(stats_window) for s in self.stages}
        self._windows["sinks"] = RollingWindow(stats_window)
        self._latency = RollingWindow(stats_window)
        self._rate = RateMeter()
        self._errors: dict[str, int] = {}
        self._last_event: dict[str, float] = {}
        self._items_in = 0
        self._items_out = 0
        self._discarded = 0  # items in a thread's hands when StopPipeline was raised
        self._threads: list[threading.Thread] = []
        self._in_read = False  # the source thread is inside the source's read (not in a stage)
        self._stop_reason: str | None = None
        self._failure: tuple[str, BaseException] | None = None
        self._abort = threading.Event()
        self._lock = threading.RLock()  # re-entrant: the SIGINT handler may run while it is held
        self._t_start = self._t_end = 0.0
        self._started = self._finished = False
        self._opened: list[Any] = []

    # ----------------------------------------------------------------- control
    def start(self) -> Pipeline:
        """Open the source and sinks, then start the threads; returns at once."""
        if self._started:
            raise PipelineError("pipeline", "already started; a Pipeline runs once, make a new one")
        self._started = True
        self._open_all()
        n = len(self.stages)
        segs = segments(n, thread_count(n, self._live, self.threads))
        if self.switch_interval is not None and len(segs) > 1:
            lower_switch_interval(self.switch_interval)
            self._lowered = True
        self._t_start = time.monotonic()
        for first, stop in segs:
            stages = [(st, self._windows[st.name].add) for st in self.stages[max(first, 1) - 1: min(stop, n + 1) - 1]]
            out = self._write_sinks if stop == n + 2 else self._queues[stop - 1].put
            out_q = None if stop == n + 2 else self._queues[stop - 1]
            if first == 0:
                fn, args, tname = self._source_loop, (stages, out, out_q), "source"
            else:
                fn, args, tname = self._queue_loop, (self._queues[first - 1], stages, out, out_q), \
                    self.stages[first - 1].name if first <= n else "sinks"
            t = threading.Thread(target=fn, args=args, name=f"{self.name}:{tname}", daemon=True)
            self._threads.append(t)
        for t in self._threads:
            t.start()
        return self

    def stop(self, reason: str = "stop") -> None:
        """Ask the pipeline to stop now (safe from any thread or a signal handler); returns at once."""
        with self._lock:
            if self._stop_reason is None:
                self._stop_reason = reason
        self._abort.set()
        for q in self._queues:
            q.close()

    def join(self, timeout: float | None = None) -> PipelineStats:
        """Wait for the end, join the threads, close source and sinks; raise ``PipelineError`` on failure.

        With ``timeout`` (s), returns the current stats if still running then.
        """
        if not self._started:
            raise PipelineError("pipeline", "join() before start(); use run() or start() first")
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._workers_done():  # stages and sinks end promptly once the queues close
            if deadline is not None and time.monotonic() >= deadline:
                return self.stats()
            self._threads[-1].join(0.1)
        self._join_source()
        return self._finish()

    def _workers_done(self) -> bool:
        """Every thread but the source's has ended, and the source's too if it is the only one and
        the pipeline was not stopped (a stopped source thread is left to ``_join_source``)."""
        if any(t.is_alive() for t in self._threads[1:]):
            return False
        return len(self._threads) > 1 or self._abort.is_set() or not self._threads[0].is_alive()

    def run(self, on_stats: Callable[[PipelineStats], None] | None = None,
            stats_every: float = 5.0) -> PipelineStats:
        """``start()`` then block until the source ends, ``stop()``, Ctrl-C or an error.

        In the main thread SIGINT stops the pipeline cleanly (stop reason ``interrupt``) instead of
        raising ``KeyboardInterrupt``; a second SIGINT before the threads are joined raises it.
        ``on_stats`` is called with ``stats()`` every ``stats_every`` seconds from the calling thread.
        """
        previous = self._install_sigint()
        try:
            self.start()
            try:
                self._wait(on_stats, stats_every)
            except KeyboardInterrupt:  # second Ctrl-C: the threads are daemons, do not wait for them
                raise
            except BaseException:  # on_stats failed: still shut down cleanly, then re-raise
                self.stop()
                with contextlib.suppress(PipelineError):
                    self.join()
                raise
            return self.join()
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def _wait(self, on_stats: Callable[[PipelineStats], None] | None, stats_every: float) -> None:
        next_report = time.monotonic() + stats_every
        while not self._workers_done():
            self._threads[-1].join(0.05)  # short waits so SIGINT is handled promptly
            if on_stats is not None and time.monotonic() >= next_report:
                next_report += stats_every
                on_stats(self.stats())

    @property
    def running(self) -> bool:
        return self._started and not self._finished

    def __enter__(self) -> Pipeline:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self.join()

    # ------------------------------------------------------------------ stats
    def stats(self) -> PipelineStats:
        """A consistent-enough snapshot, cheap to take from any thread at any time."""
        now = time.monotonic()
        end = self._t_end if self._finished else now
        elapsed = max(end - self._t_start, 0.0) if self._started else 0.0
        p50, p95 = self._latency.percentiles(50, 95)
        return PipelineStats(
            running=self.running, stop_reason=self._stop_reason if self._finished else None,
            elapsed_s=elapsed, items_in=self._items_in, items_out=self._items_out,
            fps=self._rate.rate(now) if not self._finished else self._rate.rate(self._t_end),
            fps_overall=self._items_out / elapsed if elapsed > 0 else 0.0,
            latency_p50_ms=p50, latency_p95_ms=p95,
            stages=stage_latencies(self._windows.items()),
            dropped={q.name: q.dropped for q in self._queues},
            errors=dict(self._errors), discarded=self._discarded + sum(q.discarded for q in self._queues),
            queue_depths={q.name: len(q) for q in self._queues},
            policies={q.name: q.policy for q in self._queues},
            source=_source_stats(self.source),
        )

    # ---------------------------------------------------------------- threads
    def _source_loop(self, stages: StageFns, out: Callable[[Packet], bool], out_q: StageQueue | None) -> None:
        """Read the source, run this thread's stages on each item and hand it on (``out``)."""
        abort, it = self._abort, iter(self.source)
        try:
            while True:
                self._in_read = True
                item = next(it, None)
                self._in_read = False
                if item is None:
                    break
                self._items_in += 1
                if not self._steps(Packet(item, item.data), stages, out) or abort.is_set():
                    break
        except Exception as e:  # noqa: BLE001 - reported with the stage name
            if not abort.is_set():  # errors after stop() come from closing a blocked source
                self._fail("source", e, None, fatal=True)
        finally:
            self._in_read = False
            if out_q is not None:
                out_q.put(END)

    def _queue_loop(self, qin: StageQueue, stages: StageFns, out: Callable[[Packet], bool],
                    out_q: StageQueue | None) -> None:
        """Take items from ``qin``, run this thread's stages on each and hand it on, until ``END``."""
        get = qin.get
        try:
            while True:
                pkt = get()
                if pkt is END or not self._steps(pkt, stages, out):
                    return
        finally:
            if out_q is not None:
                out_q.put(END)

    def _steps(self, pkt: Packet, stages: StageFns, out: Callable[[Packet], bool]) -> bool:
        """Run ``stages`` on ``pkt`` then ``out``; False when this thread must end."""
        clock = time.perf_counter
        for stage, add in stages:
            t0 = clock()
            try:
                pkt.value = stage.fn(pkt.value)
            except Exception as e:  # noqa: BLE001 - reported with the stage name
                return self._fail(stage.name, e, pkt)  # True: skipped, go on with the next item
            ms = (clock() - t0) * 1000.0
            pkt.timings[stage.name] = ms
            add(ms)
        return out(pkt)

    def _write_sinks(self, pkt: Packet) -> bool:
        """Write ``pkt`` to every sink; False when this thread must end."""
        now = time.monotonic()
        pkt.latency_ms = (now - pkt.item.timestamp) * 1000.0
        t0 = time.perf_counter()
        for name, sink in self._sink_names:
            try:
                sink.write(pkt)
            except Exception as e:  # noqa: BLE001 - reported with the sink name
                return self._fail(name, e, pkt)  # True: skipped (not counted out), go on
        self._windows["sinks"].add((time.perf_counter() - t0) * 1000.0)
        self._latency.add(pkt.latency_ms)
        self._rate.mark(now)
        self._items_out += 1
        return True

    # ---------------------------------------------------------------- helpers
    def _fail(self, stage: str, exc: BaseException, pkt: Packet | None, fatal: bool = False) -> bool:
        """Count and report an error; True when the item is skipped and the thread goes on."""
        if isinstance(exc, StopPipeline):
            self._count_discard(pkt)
            self.stop("stop")
            return False
        if pkt is not None:  # a failed item (a source error is not an item: it ends the input)
            self._errors[stage] = self._errors.get(stage, 0) + 1
        skip = self.on_error == "skip" and not fatal
        seq = pkt.item.seq if pkt is not None else None
        now = time.monotonic()
        if not skip or now - self._last_event.get(stage, -1e9) >= 1.0:
            self._last_event[stage] = now
            self.bus.publish("pipeline.error", pipeline=self.name, stage=stage, error=type(exc).__name__,
                             message=str(exc), seq=seq, action="skip" if skip else "stop",
                             count=self._errors.get(stage, 1))
            if skip:
                log.warning("%s: stage %r failed on item %s, skipped (counted; at most one such log "
                            "a second): %r", self.name, stage, seq, exc)
        if skip:
            return True
        log.error("%s: stage %r failed on item %s: %r", self.name, stage, seq, exc)
        with self._lock:
            if self._failure is None:
                self._failure = (stage, exc)
            if self._stop_reason is None and stage == "source":
                self._stop_reason = "error"
        if stage != "source":  # a source error lets the items already read drain to the sinks
            self.stop("error")
        return False

    def _count_discard(self, pkt: Packet | None) -> None:
        if pkt is not None:
            with self._lock:
                self._discarded += 1

    def _open_all(self) -> None:
        try:
            self.source.open()
            self._opened.append(self.source)
            for sink in self.sinks:
                try:
                    sink.open()
                except EmberError:
                    raise
                except Exception as e:
                    raise PipelineError(sink_name(sink), f"cannot open: {type(e).__name__}: {e}") from e
                self._opened.append(sink)
        except BaseException:
            self._close_all()
            self._finished = True
            raise

    def _close_all(self) -> list[tuple[str, BaseException]]:
        problems = []
        for obj in reversed(self._opened):
            try:
                obj.close()
            except Exception as e:  # noqa: BLE001 - every sink still gets closed
                label = "source" if obj is self.source else sink_name(obj)
                log.error("%s: closing %s failed: %r", self.name, label, e)
                self.bus.publish("pipeline.error", pipeline=self.name, stage=label, error=type(e).__name__,
                                 message=str(e), seq=None, action="close", count=1)
                problems.append((label, e))
        self._opened.clear()
        return problems

    def _join_source(self) -> None:
        t = self._threads[0]
        while True:  # after stop(): a thread busy in a stage ends after it; one blocked in a read gets a grace
            t.join(SOURCE_GRACE_S if self._abort.is_set() else None)
            if not t.is_alive() or self._in_read:
                break
        if t.is_alive():  # blocked in a read: closing the source unblocks it
            try:
                self.source.close()
            except Exception as e:  # noqa: BLE001
                log.warning("%s: closing the blocked source failed: %r", self.name, e)
            t.join(2.0)
            if t.is_alive():
                log.warning("%s: the source thread is still blocked after close(); left as daemon",
                            self.name)

    def _finish(self) -> PipelineStats:
        if not self._finished:
            self._t_end = time.monotonic()
            with self._lock:
                if self._stop_reason is None:
                    self._stop_reason = "end"
            problems = self._close_all()
            if self._lowered:
                restore_switch_interval()
                self._lowered = False
            self._finished = True
            if self._failure is None and problems:
                self._failure = problems[0]
        stats = self.stats()
        if self._failure is not None:
            stage, exc = self._failure
            if isinstance(exc, PipelineError) and exc.stage == stage:
                raise exc
            raise PipelineError(stage, f"{type(exc).__name__}: {exc}") from exc
        return stats

    def _install_sigint(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return None

        def on_sigint(signum: int, frame: Any) -> None:
            if self._abort.is_set() and self._stop_reason == "interrupt":  # second Ctrl-C: stop waiting
                raise KeyboardInterrupt
            log.warning("%s: interrupted, stopping (Ctrl-C again to leave without waiting)", self.name)
            self.stop("interrupt")

        return signal.signal(signal.SIGINT, on_sigint)


def _source_stats(source: Any) -> dict[str, Any]:
    stats = getattr(source, "stats", None)
    return stats.as_dict() if hasattr(stats, "as_dict") else {}
