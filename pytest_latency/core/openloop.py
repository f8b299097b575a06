"""Open loop: requests start on one arrival schedule for the whole measurement, whatever the
replies do; each latency counts from the request's *intended* start (coordinated-omission
correction, as wrk2 and MLPerf LoadGen's Server scenario do).

How it runs:

* A dispatcher (a daemon thread for sync callables; a task on the fixture's event loop, run
  by a daemon thread, for async ones) walks one Poisson or constant schedule from the first
  warm-up request to the end of ``max_time_s``. Blocks, looks and warm-up windows never pause
  or restart it: the runner only *accounts* for arrivals, by index.
* Sync requests run on up to `OPEN_LOOP_THREADS` daemon threads; when every thread is busy,
  requests wait in an unbounded queue with their intended start, start late, and are timed
  from when they should have started. Async requests are tasks: no limit but memory
  (``rate_rps * max_time_s`` requests at most, bounded by the marker's validation).
* A block ends once its arrivals are due and each has finished or has waited longer than the
  largest latency target (so it already exceeds every target). An unfinished one is
  *censored*: its latency is at least ``now - intended``. It is counted as that lower bound
  when bounding from below (towards FAIL) and as infinite when bounding from above (towards
  PASS), so it can only push a verdict towards FAIL; if it finishes later, its real latency
  replaces the bound.
* After the last look, requests still outstanding get a grace (`hang.grace_ns`); those still
  running then are reported as hung and fail the test.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import numpy as np

from .drivers import POLL_S, Block, Call, Clock, Driver
from .hang import DaemonPool

# Worker threads an open loop keeps for a sync callable; further requests queue.
OPEN_LOOP_THREADS = 32
# How long before its intended start the dispatcher stops sleeping and yields until the
# instant (time.sleep overshoots by tens of microseconds on Linux).
_SPIN_NS = 80_000
# The event loop's timers fire up to ~1 ms late (epoll has ms resolution).
_LOOP_SPIN_NS = 1_500_000
# Schedule offsets are drawn this many at a time.
_CHUNK = 1024
# Lead before the first arrival, so starting the dispatcher is not counted as lateness.
_LEAD_NS = 1_000_000


class Schedule:
    """One arrival schedule: offsets (ns) from its start, drawn lazily, never reset."""

    def __init__(self, rate_rps: float, arrivals: str, seed: int | None) -> None:
        self.gap_ns = 1e9 / rate_rps
        self.constant = arrivals == "constant"
        self.rng = np.random.default_rng(seed)

    def offsets(self) -> Iterator[int]:
        t = 0.0
        yield 0
        while True:
            if self.constant:
                gaps = np.full(_CHUNK, self.gap_ns)
            else:
                gaps = self.rng.exponential(self.gap_ns, _CHUNK)
            times = np.cumsum(gaps) + t
            t = float(times[-1])
            yield from (int(x) for x in times)


class OpenLoopDriver(Driver):
    """Requests start at scheduled instants (`rate_rps`, Poisson or constant gaps)."""

    mode = "open"

    def __init__(
        self,
        call: Call,
        rate_rps: float,
        arrivals: str,
        seed: int | None,
        clock: Clock = time.perf_counter_ns,
        *,
        drain_ns: int = 1_000_000_000,
        threads: int = OPEN_LOOP_THREADS,
    ) -> None:
        super().__init__(call, clock)
        self.rate_rps, self.arrivals = rate_rps, arrivals
        self.schedule = Schedule(rate_rps, arrivals, seed)
        # A block waits at most this long (from intended start) for an unfinished request.
        self.drain_ns = drain_ns
        self.concurrency = 0 if call.is_async else threads
        # Where the schedule ends (set by the runner: the measurement's deadline).
        self.horizon_ns: int | None = None
        self._threads = threads
        self._lock = threading.Lock()
        self._intended: list[int] = []
        self._start: list[int] = []  # 0 until a worker starts it
        self._end: list[int] = []  # 0 until it finishes (returns or raises)
        self._error: dict[int, str] = {}
        self._cursor = 0  # first arrival not yet accounted for by a block
        self._carried: dict[int, int] = {}  # censored in an earlier block, not finished yet
        self._unstarted: set[int] = set()  # accounted for before any worker started them
        self._stop = threading.Event()
        self._dispatched = threading.Event()  # the dispatcher reached the horizon
        self._loop_done = threading.Event()
        self._pool: DaemonPool | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.loop_stuck = False  # async: the loop thread did not stop (a call blocks it)

    # -- the dispatcher ------------------------------------------------------------------

    def _begin(self, deadline_ns: int) -> None:
        horizon = self.horizon_ns if self.horizon_ns is not None else deadline_ns
        base = self.clock() + _LEAD_NS
        context = contextvars.copy_context()
        if self.call.is_async:
            target: Any = functools.partial(self._run_loop, base, horizon)
        else:
            self._pool = DaemonPool(self._threads, "latency-open")
            target = functools.partial(self._dispatch_sync, base, horizon)
        self._thread = threading.Thread(
            target=context.run, args=(target,), name="latency-open-dispatcher", daemon=True
        )
        self._thread.start()

    def _issue(self, intended: int) -> int:
        with self._lock:
            i = len(self._intended)
            self._intended.append(intended)
            self._start.append(0)
            self._end.append(0)
        return i

    def _dispatch_sync(self, base: int, horizon: int) -> None:
        clock, stop, pool = self.clock, self._stop, self._pool
        assert pool is not None
        try:
            for offset in self.schedule.offsets():
                intended = base + offset
                if intended > horizon or stop.is_set():
                    break
                remaining = intended - clock()
                if remaining > _SPIN_NS and stop.wait((remaining - _SPIN_NS) / 1e9):
                    break
                while clock() < intended:
                    time.sleep(0)  # releases the GIL while waiting out the last microseconds
                i = self._issue(intended)
                if not pool.submit(functools.partial(self._one_sync, i, intended)):
                    break  # closed under us: the measurement is over
        finally:
            self._dispatched.set()

    def _one_sync(self, i: int, intended: int) -> None:
        call = self.call
        self._start[i] = self.clock()
        try:
            call.fn(*call.args, **call.kwargs)
        except Exception as exc:
            self._failed(i, exc)
            return
        self._end[i] = self.clock()

    def _failed(self, i: int, exc: Exception) -> None:
        end = self.clock()
        self._error[i] = "".join(traceback.format_exception(exc))
        self._end[i] = end  # last: a non-zero end marks the request finished

    def _run_loop(self, base: int, horizon: int) -> None:
        loop = self.call.loop
        assert loop is not None
        asyncio.set_event_loop(loop)  # the callable may look its loop up
        dispatcher = loop.create_task(self._dispatch_async(base, horizon))
        try:
            loop.run_forever()
        finally:
            pending = [t for t in (dispatcher, *self._tasks) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.wait(pending, timeout=1.0))
            asyncio.set_event_loop(None)
            self._loop_done.set()

    async def _dispatch_async(self, base: int, horizon: int) -> None:
        loop = asyncio.get_running_loop()
        clock, stop = self.clock, self._stop
        try:
            for offset in self.schedule.offsets():
                intended = base + offset
                if intended > horizon or stop.is_set():
                    break
                delay = intended - clock() - _LOOP_SPIN_NS
                if delay > 0:
                    await asyncio.sleep(delay / 1e9)
                while clock() < intended:
                    await asyncio.sleep(0)
                i = self._issue(intended)
                task = loop.create_task(self._one_async(i))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            self._dispatched.set()

    async def _one_async(self, i: int) -> None:
        self._start[i] = self.clock()
        try:
            await self.call.coro()
        except Exception as exc:
            self._failed(i, exc)
            return
        self._end[i] = self.clock()

    # -- accounting (main thread) --------------------------------------------------------

    def run_block(self, count: int, deadline_ns: int) -> Block:
        """Account for the next `count` arrivals of the schedule: wait until they are due,
        then until each has finished or waited `drain_ns`; report what finished, what is
        still running (censored), and what finished of earlier blocks' censored arrivals."""
        block = self.partial = Block()
        if self._thread is None:
            self._begin(deadline_ns)
        clock = self.clock
        first, want = self._cursor, self._cursor + count
        while (
            len(self._intended) < want and not self._dispatched.is_set() and clock() <= deadline_ns
        ):
            time.sleep(POLL_S)
        last = min(len(self._intended), want)
        self._cursor = last
        pending = [i for i in range(first, last) if not self._end[i]]
        while pending:
            now = clock()
            if self.hard_ns is not None and now > self.hard_ns:
                break
            if all(now - self._intended[i] > self.drain_ns for i in pending):
                break
            time.sleep(POLL_S)
            pending = [i for i in pending if not self._end[i]]
        now = clock()
        earlier = list(self._carried)
        for i in list(self._unstarted):  # queued behind busy workers, started since
            if self._start[i]:
                self._unstarted.discard(i)
                block.start_lags_ns.append(self._start[i] - self._intended[i])
                block.not_issued -= 1
        self._account(block, range(first, last), now)
        for i in earlier:
            if self._end[i]:
                intended = self._carried.pop(i)
                error = self._error.get(i)
                block.resolved.append((i, None if error else self._end[i] - intended, error))
            else:
                block.still_censored[i] = now - self._carried[i]
        block.wall_ns = int((last - first) * 1e9 / self.rate_rps)
        return block

    def _account(self, block: Block, indices: range, now: int) -> None:
        first_start = last_start = None
        for i in indices:
            intended, start, end = self._intended[i], self._start[i], self._end[i]
            if start:
                block.start_lags_ns.append(start - intended)
                first_start = start if first_start is None else min(first_start, start)
                last_start = start if last_start is None else max(last_start, start)
            if end:
                error = self._error.get(i)
                if error is not None:
                    block.errors += 1
                    block.first_error = block.first_error or error
                else:
                    block.latencies_ns.append(end - intended)
            else:
                block.censored[i] = now - intended
                self._carried[i] = intended
                if not start:
                    block.not_issued += 1
                    self._unstarted.add(i)
        started = [i for i in indices if self._start[i]]
        if len(started) > 1 and first_start is not None and last_start is not None:
            block.scheduled_span_ns = self._intended[started[-1]] - self._intended[started[0]]
            block.actual_span_ns = last_start - first_start

    def finish(self, grace_ns: int) -> Block | None:
        """Stop issuing; give censored requests `grace_ns` to finish; report the rest hung."""
        self._stop.set()
        if not self._carried:
            return None
        until = self.clock() + grace_ns
        while self.clock() < until and any(not self._end[i] for i in self._carried):
            time.sleep(POLL_S)
        now = self.clock()
        block = Block()
        still = [i for i in self._carried if not self._end[i]]
        if still:
            block.add_hung(len(still), now - min(self._carried[i] for i in still))
        return block

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and not self.call.is_async:
            self._thread.join(1.0)  # it only sleeps or spins between arrivals
        if self._pool is not None:
            self._pool.close()
        loop = self.call.loop
        if self.call.is_async and self._thread is not None and loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if not self._loop_done.wait(1.0):
                self.loop_stuck = True  # a request blocks the loop; its thread is abandoned
