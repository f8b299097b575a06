"""Open loop: requests start on one arrival schedule for the whole measurement, whatever the
replies do; each latency counts from the request's *intended* start (coordinated-omission
correction, as wrk2 and MLPerf LoadGen's Server scenario do).

How it runs:

* One Poisson or constant schedule runs from the first warm-up request to the end of
  ``max_time_s``. Blocks, looks and warm-up windows never pause or restart it: the runner
  only *accounts* for arrivals, by index, while the requests go on in other threads.
* Sync requests run on `OPEN_LOOP_THREADS` daemon threads: each takes the next arrival,
  sleeps until its instant and runs it. When every thread is busy, due arrivals wait untaken
  -- an unbounded queue -- and start late, timed from when they should have started. Async
  requests are tasks started at their instant by a dispatcher on the fixture's event loop,
  which a daemon thread runs for the measurement: no limit but memory (``rate_rps *
  max_time_s`` requests at most, bounded by the marker's ceilings).
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
import bisect
import contextvars
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import numpy as np

from .drivers import POLL_S, Block, Call, Clock, Driver

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
        # How many arrivals the schedule has (None: no limit); `compare` gives each side's
        # block a schedule of its own, so nothing of one side runs in the other's turn.
        self.limit: int | None = None
        self._threads = threads
        self._lock = threading.Lock()
        self._intended: list[int] = []
        self._start: list[int] = []  # 0 until a worker starts it
        self._end: list[int] = []  # 0 until it finishes (returns or raises)
        self._error: dict[int, str] = {}
        self._wrong: set[int] = set()  # arrivals whose answer `call.check` rejected
        self._cursor = 0  # first arrival not yet accounted for by a block
        self._carried: dict[int, int] = {}  # censored in an earlier block, not finished yet
        self._unstarted: set[int] = set()  # accounted for before any worker started them
        self._next = 0  # the next arrival no worker has taken
        self._horizon = 0
        self._base = 0
        self._offsets: Iterator[int] = iter(())
        self._stop = threading.Event()
        self._loop_done = threading.Event()
        self._threads_started: list[threading.Thread] = []
        self._begun = False  # the schedule has started (`_begin`)
        self._tasks: set[asyncio.Task[None]] = set()
        self.loop_stuck = False  # async: the loop thread did not stop (a call blocks it)

    # -- issuing requests ----------------------------------------------------------------

    def _begin(self, deadline_ns: int) -> None:
        self._begun = True
        self._horizon = self.horizon_ns if self.horizon_ns is not None else deadline_ns
        self._base = self.clock() + _LEAD_NS
        self._offsets = self.schedule.offsets()
        if self.call.is_async:
            targets: list[Any] = [self._run_loop]
            name = "latency-open-loop"
        else:
            targets = [self._work_sync] * self._threads
            name = "latency-open"
        for k, target in enumerate(targets):
            # Each thread runs in a copy of the measuring context (the stage recorder).
            thread = threading.Thread(
                target=contextvars.copy_context().run,
                args=(target,),
                name=f"{name}-{k}",
                daemon=True,  # one stuck in a call must not keep the interpreter alive
            )
            self._threads_started.append(thread)
            thread.start()

    def _ensure(self, n: int) -> None:
        """Draw the schedule up to `n` arrivals (the caller holds the lock)."""
        while len(self._intended) < n:
            self._intended.append(self._base + next(self._offsets))
            self._start.append(0)
            self._end.append(0)

    def _claim(self) -> tuple[int, int]:
        """The next arrival nobody has taken yet, and its intended start."""
        with self._lock:
            i = self._next
            self._next += 1
            self._ensure(i + 1)
            return i, self._intended[i]

    def _work_sync(self) -> None:
        """A worker thread: take the next arrival, wait for its instant, run it. While every
        worker is busy, due arrivals wait untaken (a queue in all but name) and start late,
        timed from their intended start."""
        clock, stop, call = self.clock, self._stop, self.call
        fn, args, kwargs = call.fn, call.args, call.kwargs
        while not stop.is_set():
            i, intended = self._claim()
            if intended > self._horizon or (self.limit is not None and i >= self.limit):
                return
            remaining = intended - clock()
            if remaining > _SPIN_NS and stop.wait((remaining - _SPIN_NS) / 1e9):
                return
            while clock() < intended:
                time.sleep(0)  # releases the GIL while waiting out the last microseconds
            self._start[i] = clock()
            try:
                value = fn(*args, **kwargs)
            except Exception as exc:
                self._failed(i, exc)
                continue
            self._finished(i, value, clock())

    def _finished(self, i: int, value: Any, end: int) -> None:
        """Arrival `i` returned `value` at `end`: judge the answer (outside the timing), then
        mark it finished."""
        if self.call.check is not None:
            try:
                right = self.call.right(value)
            except Exception as exc:  # a check that raises makes the call an error
                self._failed(i, exc)
                return
            if not right:
                self._wrong.add(i)
        self._end[i] = end  # last: a non-zero end marks the request finished

    def _failed(self, i: int, exc: Exception) -> None:
        end = self.clock()
        self._error[i] = "".join(traceback.format_exception(exc))
        self._end[i] = end  # last: a non-zero end marks the request finished

    def _run_loop(self) -> None:
        loop = self.call.loop
        assert loop is not None
        asyncio.set_event_loop(loop)  # the callable may look its loop up
        dispatcher = loop.create_task(self._dispatch_async())
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

    async def _dispatch_async(self) -> None:
        """On the loop: start each arrival as a task at its instant (tasks, so no limit)."""
        loop = asyncio.get_running_loop()
        clock, stop = self.clock, self._stop
        while not stop.is_set():
            i, intended = self._claim()
            if intended > self._horizon or (self.limit is not None and i >= self.limit):
                return
            delay = intended - clock() - _LOOP_SPIN_NS
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            while clock() < intended:
                await asyncio.sleep(0)
            task = loop.create_task(self._one_async(i))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _one_async(self, i: int) -> None:
        self._start[i] = self.clock()
        try:
            value = await self.call.coro()
        except Exception as exc:
            self._failed(i, exc)
            return
        self._finished(i, value, self.clock())

    # -- accounting (main thread) --------------------------------------------------------

    def run_block(self, count: int, deadline_ns: int) -> Block:
        """Account for the next `count` arrivals of the schedule: wait until they are due,
        then until each has finished or waited `drain_ns`; report what finished, what is
        still running (censored), and what finished of earlier blocks' censored arrivals."""
        block = self.partial = Block()
        if not self._begun:
            self._begin(deadline_ns)
        clock = self.clock
        first, want = self._cursor, self._cursor + count
        with self._lock:
            self._ensure(want)
        # Wait until the block's last arrival is due (or the budget ends first).
        until = min(self._intended[want - 1], deadline_ns, self._horizon)
        while (remaining := until - clock()) > 0:
            time.sleep(remaining / 1e9)
        cut = min(clock(), self._horizon)
        last = bisect.bisect_right(self._intended, cut, first, want)
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
                latency = None if error else self._end[i] - intended
                block.resolved.append((i, latency, error, i in self._wrong))
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
                    if i in self._wrong:
                        block.wrong_ns.append(end - intended)
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
        """Stop issuing; give censored requests that started `grace_ns` to finish; report
        those still running then as hung. (Censored requests no worker had started stay
        censored: once the schedule stops they never run, and they hung nothing.)"""
        self._stop.set()
        running = [i for i in self._carried if self._start[i]]
        if not running:
            return None
        until = self.clock() + grace_ns
        while self.clock() < until and any(not self._end[i] for i in running):
            time.sleep(POLL_S)
        still = [i for i in running if not self._end[i]]
        if not still:
            return None
        block = Block()
        block.add_hung(len(still), self.clock() - min(self._carried[i] for i in still))
        return block

    def close(self) -> None:
        self._stop.set()  # idle workers wake and leave; one stuck in a call is abandoned
        loop = self.call.loop
        if self.call.is_async and self._threads_started and loop is not None:
            loop.call_soon_threadsafe(loop.stop)
            if not self._loop_done.wait(1.0):
                self.loop_stuck = True  # a request blocks the loop; its thread is abandoned
