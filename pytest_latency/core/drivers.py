"""Timed loops: how calls are issued. Each driver runs blocks of calls and returns raw timings.

* `SerialDriver` -- one call after another (sync or async), on the calling thread.
* `ClosedLoopDriver` -- N workers, each issuing its next call when its last one returns
  (daemon threads for sync callables, tasks on the fixture's event loop for async ones).
* `OpenLoopDriver` (in `openloop`) -- requests start on one schedule for the whole
  measurement, whatever the replies do; latencies count from each request's *intended* start.

Timings use ``time.perf_counter_ns``; samples are integer nanoseconds. Exceptions from the
callable are counted as errors and never timed as successes. A call still running at the
driver's ``hard_ns`` (``max_time_s`` plus a grace, see `hang`) is abandoned and reported as
hung in the block.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import itertools
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .hang import CallTimeout, DaemonPool

Clock = Callable[[], int]

# Open-loop requests that start later than this after their intended time count as late.
LATE_THRESHOLD_NS = 1_000_000
# How long the main thread sleeps between checks on worker threads (never inside a timing).
POLL_S = 0.002


@dataclass
class Block:
    """Raw result of one block of calls."""

    latencies_ns: list[int] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    wall_ns: int = 0
    start_lags_ns: list[int] = field(default_factory=list)  # open loop only
    scheduled_span_ns: int = 0  # open loop: intended first-to-last start
    actual_span_ns: int = 0  # open loop: actual first-to-last start
    # Open loop: due, not started by any worker when the block ended (an earlier block's
    # arrival that has started since counts -1 here).
    not_issued: int = 0
    # Open loop: arrivals of this block still unfinished at its end, by arrival index, with
    # the time they had been waiting since their intended start (a lower bound on latency).
    censored: dict[int, int] = field(default_factory=dict)
    # Open loop: earlier blocks' censored arrivals still unfinished, with their grown bound.
    still_censored: dict[int, int] = field(default_factory=dict)
    # Open loop: earlier-censored arrivals that have finished since: (index, latency_ns or
    # None for an error, the error's traceback or None, whether the answer was wrong).
    resolved: list[tuple[int, int | None, str | None, bool]] = field(default_factory=list)
    # Latencies (also in `latencies_ns`) of calls whose answer `Call.check` rejected.
    wrong_ns: list[int] = field(default_factory=list)
    hung: int = 0  # calls abandoned at the hard limit, still running
    hung_waited_ns: int = 0  # the longest of them had run this long

    def add_error(self, exc: BaseException) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = "".join(traceback.format_exception(exc))

    def add_hung(self, count: int, waited_ns: int) -> None:
        self.hung += count
        self.hung_waited_ns = max(self.hung_waited_ns, waited_ns)

    def add_checked(self, call: Call, value: Any, latency_ns: int) -> None:
        """A returned call whose answer `call.check` judges (after the timing): timed, and
        counted as wrong when rejected. A check that raises makes the call an error, with
        the check's traceback."""
        try:
            right = call.right(value)
        except Exception as exc:
            self.add_error(exc)
            return
        self.latencies_ns.append(latency_ns)
        if not right:
            self.wrong_ns.append(latency_ns)


class NotTimedError(TypeError):
    """The callable returned something that does the work later (a coroutine, an awaitable, a
    generator, a future): timing the call would time only the object's creation."""


def check_result(fn: Callable[..., Any], value: Any) -> None:
    """Refuse a sync call whose return value means the real work has not happened yet."""
    kind = None
    if inspect.iscoroutine(value):
        value.close()  # never awaited: close it so Python does not warn about it
        kind = "a coroutine"
    elif inspect.isawaitable(value):
        kind = f"an awaitable ({type(value).__name__})"
    elif inspect.isgenerator(value) or inspect.isasyncgen(value):
        kind = f"a generator ({type(value).__name__})"
    elif isinstance(value, concurrent.futures.Future):
        kind = "a concurrent.futures.Future"
    if kind is None:
        return
    name = getattr(fn, "__qualname__", None) or repr(fn)
    raise NotTimedError(
        f"{name} returned {kind}: its work happens only when that is awaited or consumed, so "
        "timing the call would time creating it and nothing else. Pass the async function "
        "itself (latency(client.get, url), or an `async def` wrapper), not a sync lambda "
        "around it; for a generator, time a function that consumes it (e.g. "
        "lambda: list(gen_fn()))"
    )


class Call:
    """The callable under test with its arguments, sync or async."""

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        loop: asyncio.AbstractEventLoop | None,
        check: Callable[[Any], object] | None = None,
    ) -> None:
        self.fn, self.args, self.kwargs, self.loop = fn, args, kwargs, loop
        self.is_async = loop is not None
        # Judges each answer (goodput): truthy when right. Run after the call's timing.
        self.check = check

    def right(self, value: Any) -> bool:
        """Whether `check` accepts the answer `value` (True without a check)."""
        return self.check is None or bool(self.check(value))

    @property
    def name(self) -> str:
        fn = self.fn
        return getattr(fn, "__qualname__", None) or f"a {type(fn).__qualname__} instance"

    def bound(self) -> Callable[[], Any]:
        """A zero-argument callable: `fn` itself when there are no arguments (cheapest)."""
        if not self.args and not self.kwargs:
            return self.fn
        return functools.partial(self.fn, *self.args, **self.kwargs)

    def coro(self) -> Awaitable[Any]:
        return self.fn(*self.args, **self.kwargs)  # type: ignore[no-any-return]

    def run(self, coro: Awaitable[Any], timeout_s: float | None = None) -> Any:
        """Run `coro` on the fixture's loop; cancel it after `timeout_s` (`TimeoutError`)."""
        assert self.loop is not None
        loop = self.loop
        task: asyncio.Task[Any] = loop.create_task(coro)  # type: ignore[arg-type]
        waiter = task if timeout_s is None else asyncio.wait_for(task, max(timeout_s, 1e-3))
        try:
            return loop.run_until_complete(waiter)
        except BaseException:
            # A watchdog or Ctrl-C interrupted the loop itself: do not leave the block
            # running on it (it would resume under the next run of the loop). Best effort:
            # the original error is the one to report.
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    loop.run_until_complete(asyncio.wait({task}, timeout=1.0))
            raise


class Driver:
    mode = "serial"
    concurrency = 1
    # The runner times the first call on its own, in this process (not so for a driver
    # whose requests run elsewhere: there the first request is part of the load).
    measures_cold_start = True

    def __init__(self, call: Call, clock: Clock = time.perf_counter_ns) -> None:
        self.call, self.clock = call, clock
        # Calls still running at this `clock()` value are abandoned as hung (set by the
        # runner: the measurement's deadline plus a grace).
        self.hard_ns: int | None = None
        self.partial: Block | None = None  # the block being run, for a watchdog's timeout

    def run_block(self, count: int, deadline_ns: int) -> Block:
        """Run up to `count` calls; start none after `deadline_ns` (a `clock()` value)."""
        raise NotImplementedError

    def finish(self, grace_ns: int) -> Block | None:
        """After the last block: settle what is still outstanding (open loop)."""
        return None

    def close(self) -> None:
        """Release worker threads (never waiting for one stuck in a call)."""

    def _timeout_s(self) -> float | None:
        return None if self.hard_ns is None else (self.hard_ns - self.clock()) / 1e9


class SerialDriver(Driver):
    """One call at a time. The timed path is two clock reads and an append."""

    def run_block(self, count: int, deadline_ns: int) -> Block:
        block = self.partial = Block()
        out = block.latencies_ns
        clock = self.clock
        if self.call.is_async:
            block_start = clock()
            started = [block_start]
            try:
                coro = self._async_block(count, deadline_ns, block, started)
                self.call.run(coro, self._timeout_s())
            except (TimeoutError, CallTimeout):
                block.add_hung(1, clock() - started[0])
            block.wall_ns = clock() - block_start
            return block
        target = self.call.bound()
        append = out.append
        checked = self.call.check is not None
        block_start = now = t0 = clock()
        try:
            for _ in range(count):
                if now > deadline_ns:
                    break
                # Only the call sits between the two clock reads: the deadline check and the
                # append happen outside the timed span.
                t0 = clock()
                try:
                    value = target()
                except Exception as exc:  # the callable's failure is data, not our crash
                    now = clock()
                    block.add_error(exc)
                    continue
                now = clock()
                if checked:
                    block.add_checked(self.call, value, now - t0)
                else:
                    append(now - t0)
        except CallTimeout:  # the watchdog: this call outlived the measurement
            block.add_hung(1, clock() - t0)
        block.wall_ns = clock() - block_start
        return block

    async def _async_block(
        self, count: int, deadline_ns: int, block: Block, started: list[int]
    ) -> None:
        clock, call = self.clock, self.call
        for _ in range(count):
            t0 = clock()
            if t0 > deadline_ns:
                break
            started[0] = t0
            try:
                value = await call.coro()
            except Exception as exc:
                block.add_error(exc)
                continue
            block.add_checked(call, value, clock() - t0)


class ClosedLoopDriver(Driver):
    """`concurrency` workers share a counter; each starts its next call as its last returns."""

    mode = "closed"

    def __init__(self, call: Call, concurrency: int, clock: Clock = time.perf_counter_ns):
        super().__init__(call, clock)
        self.concurrency = concurrency
        # Persistent threads: a worker's thread-local state (connections, sessions) survives
        # from warm-up into the timed blocks, as it would in a real client.
        self._pool = None if call.is_async else DaemonPool(concurrency, "latency-worker")

    def run_block(self, count: int, deadline_ns: int) -> Block:
        block = self.partial = Block()
        counter = itertools.count()
        # Per worker: when its current call started (0 while between calls).
        starts = [0] * self.concurrency
        if self.call.is_async:
            start = self.clock()
            try:
                self.call.run(
                    self._async_block(count, deadline_ns, counter, block, starts),
                    self._timeout_s(),
                )
            except (TimeoutError, CallTimeout):
                self._abandon(block, starts)
            block.wall_ns = self.clock() - start
            return block
        assert self._pool is not None
        lock = threading.Lock()
        barrier = threading.Barrier(self.concurrency + 1)
        done = [0]
        finished = threading.Event()  # set by the last worker to leave the block
        for w in range(self.concurrency):
            self._pool.submit(
                functools.partial(
                    self._worker,
                    w,
                    count,
                    deadline_ns,
                    counter,
                    block,
                    lock,
                    barrier,
                    starts,
                    (done, finished),
                )
            )
        barrier.wait()
        start = self.clock()
        # One wake-up at the end (no polling that would take the GIL from the workers);
        # interruptible by Ctrl-C.
        if not finished.wait(self._timeout_s()):
            with lock:
                self._abandon(block, starts)
        block.wall_ns = self.clock() - start
        return block

    def _abandon(self, block: Block, starts: list[int]) -> None:
        now = self.clock()
        running = [s for s in starts if s]
        block.add_hung(len(running) or 1, now - min(running) if running else 0)

    def _worker(
        self,
        w: int,
        count: int,
        deadline_ns: int,
        counter: itertools.count[int],
        block: Block,
        lock: threading.Lock,
        barrier: threading.Barrier,
        starts: list[int],
        done: tuple[list[int], threading.Event],
    ) -> None:
        target, clock = self.call.bound(), self.clock
        checked = self.call.check is not None
        local: list[int] = []
        append = local.append
        try:
            barrier.wait()
            now = clock()
            while next(counter) < count and now <= deadline_ns:
                t0 = starts[w] = clock()
                try:
                    value = target()
                except Exception as exc:
                    now = clock()
                    starts[w] = 0
                    with lock:
                        block.add_error(exc)
                    continue
                now = clock()
                starts[w] = 0
                if checked:
                    with lock:
                        block.add_checked(self.call, value, now - t0)
                else:
                    append(now - t0)
        finally:
            count_done, finished = done
            with lock:
                block.latencies_ns.extend(local)
                count_done[0] += 1
                if count_done[0] == self.concurrency:
                    finished.set()

    async def _async_block(
        self,
        count: int,
        deadline_ns: int,
        counter: itertools.count[int],
        block: Block,
        starts: list[int],
    ) -> None:
        clock, call = self.clock, self.call

        async def worker(w: int) -> None:
            while next(counter) < count:
                t0 = clock()
                if t0 > deadline_ns:
                    break
                starts[w] = t0
                try:
                    value = await call.coro()
                except Exception as exc:
                    starts[w] = 0
                    block.add_error(exc)
                    continue
                starts[w] = 0
                block.add_checked(call, value, clock() - t0)

        await asyncio.gather(*(worker(w) for w in range(self.concurrency)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
