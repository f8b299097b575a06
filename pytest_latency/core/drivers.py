"""Timed loops: how calls are issued. Each driver runs blocks of calls and returns raw timings.

* `SerialDriver` -- one call after another (sync or async).
* `ClosedLoopDriver` -- N workers, each issuing its next call when its last one returns
  (threads for sync callables, tasks on the fixture's event loop for async ones).
* `OpenLoopDriver` -- requests start on a schedule (Poisson or constant arrivals) whatever
  the replies do; each latency counts from the request's *intended* start, so a stall shows
  up in every request it delayed (coordinated-omission correction, as wrk2 and LoadGen do).

Timings use ``time.perf_counter_ns``; samples are integer nanoseconds. Exceptions from the
callable are counted as errors and never timed as successes.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Clock = Callable[[], int]

# Open-loop requests that start later than this after their intended time count as late.
LATE_THRESHOLD_NS = 1_000_000
# Worker threads an open loop may keep busy at once for a sync callable.
OPEN_LOOP_THREADS = 32
# How long before its intended start a worker stops sleeping and yields until the instant
# (time.sleep overshoots by tens of microseconds on Linux).
_SPIN_NS = 80_000


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
    not_issued: int = 0  # open loop: due before the deadline, never started

    def add_error(self, exc: BaseException) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = "".join(traceback.format_exception(exc))


class Call:
    """The callable under test with its arguments, sync or async."""

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.fn, self.args, self.kwargs, self.loop = fn, args, kwargs, loop
        self.is_async = loop is not None

    def bound(self) -> Callable[[], Any]:
        """A zero-argument callable: `fn` itself when there are no arguments (cheapest)."""
        if not self.args and not self.kwargs:
            return self.fn
        return functools.partial(self.fn, *self.args, **self.kwargs)

    def coro(self) -> Awaitable[Any]:
        return self.fn(*self.args, **self.kwargs)  # type: ignore[no-any-return]

    def run(self, coro: Awaitable[Any]) -> Any:
        assert self.loop is not None
        return self.loop.run_until_complete(coro)


class Driver:
    mode = "serial"
    concurrency = 1

    def __init__(self, call: Call, clock: Clock = time.perf_counter_ns) -> None:
        self.call, self.clock = call, clock

    def run_block(self, count: int, deadline_ns: int) -> Block:
        """Run up to `count` calls; start none after `deadline_ns` (a `clock()` value)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release worker threads."""


class SerialDriver(Driver):
    """One call at a time. The timed path is two clock reads and an append."""

    def run_block(self, count: int, deadline_ns: int) -> Block:
        block = Block()
        out = block.latencies_ns
        clock = self.clock
        if self.call.is_async:
            block_start = clock()
            self.call.run(self._async_block(count, deadline_ns, block))
            block.wall_ns = clock() - block_start
            return block
        target = self.call.bound()
        append = out.append
        block_start = now = clock()
        for _ in range(count):
            if now > deadline_ns:
                break
            # Only the call sits between the two clock reads: the deadline check and the
            # append happen outside the timed span.
            t0 = clock()
            try:
                target()
            except Exception as exc:  # the callable's failure is data, not our crash
                now = clock()
                block.add_error(exc)
                continue
            now = clock()
            append(now - t0)
        block.wall_ns = clock() - block_start
        return block

    async def _async_block(self, count: int, deadline_ns: int, block: Block) -> None:
        clock, call, append = self.clock, self.call, block.latencies_ns.append
        for _ in range(count):
            t0 = clock()
            if t0 > deadline_ns:
                break
            try:
                await call.coro()
            except Exception as exc:
                block.add_error(exc)
                continue
            append(clock() - t0)


class ClosedLoopDriver(Driver):
    """`concurrency` workers share a counter; each starts its next call as its last returns."""

    mode = "closed"

    def __init__(self, call: Call, concurrency: int, clock: Clock = time.perf_counter_ns):
        super().__init__(call, clock)
        self.concurrency = concurrency
        # Persistent threads: a worker's thread-local state (connections, sessions) survives
        # from warm-up into the timed blocks, as it would in a real client.
        self._pool = (
            None
            if call.is_async
            else ThreadPoolExecutor(concurrency, thread_name_prefix="latency-worker")
        )

    def run_block(self, count: int, deadline_ns: int) -> Block:
        block = Block()
        counter = itertools.count()
        if self.call.is_async:
            start = self.clock()
            self.call.run(self._async_block(count, deadline_ns, counter, block))
            block.wall_ns = self.clock() - start
            return block
        assert self._pool is not None
        lock = threading.Lock()
        barrier = threading.Barrier(self.concurrency + 1)
        futures = [
            self._pool.submit(self._worker, count, deadline_ns, counter, block, lock, barrier)
            for _ in range(self.concurrency)
        ]
        barrier.wait()
        start = self.clock()
        for f in futures:
            f.result()
        block.wall_ns = self.clock() - start
        return block

    def _worker(
        self,
        count: int,
        deadline_ns: int,
        counter: itertools.count[int],
        block: Block,
        lock: threading.Lock,
        barrier: threading.Barrier,
    ) -> None:
        target, clock = self.call.bound(), self.clock
        local: list[int] = []
        append = local.append
        barrier.wait()
        now = clock()
        while next(counter) < count and now <= deadline_ns:
            t0 = clock()
            try:
                target()
            except Exception as exc:
                now = clock()
                with lock:
                    block.add_error(exc)
                continue
            now = clock()
            append(now - t0)
        with lock:
            block.latencies_ns.extend(local)

    async def _async_block(
        self, count: int, deadline_ns: int, counter: itertools.count[int], block: Block
    ) -> None:
        clock, call, append = self.clock, self.call, block.latencies_ns.append

        async def worker() -> None:
            while next(counter) < count:
                t0 = clock()
                if t0 > deadline_ns:
                    break
                try:
                    await call.coro()
                except Exception as exc:
                    block.add_error(exc)
                    continue
                append(clock() - t0)

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


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
    ) -> None:
        super().__init__(call, clock)
        self.rate_rps, self.arrivals = rate_rps, arrivals
        self.rng = np.random.default_rng(seed)
        # Sync callables: a pool of threads; async ones: as many tasks as are in flight.
        self.concurrency = 0 if call.is_async else OPEN_LOOP_THREADS
        self._pool = (
            None
            if call.is_async
            else ThreadPoolExecutor(OPEN_LOOP_THREADS, thread_name_prefix="latency-open")
        )

    def schedule(self, count: int) -> list[int]:
        """Intended start offsets (ns from the block start) of `count` requests."""
        gap_ns = 1e9 / self.rate_rps
        if self.arrivals == "constant":
            gaps = np.full(count, gap_ns)
        else:
            gaps = self.rng.exponential(gap_ns, count)
        gaps[0] = 0.0
        return [int(x) for x in np.cumsum(gaps)]

    def _sleep_until(self, deadline_ns: int) -> None:
        clock = self.clock
        remaining = deadline_ns - clock()
        if remaining > _SPIN_NS:
            time.sleep((remaining - _SPIN_NS) / 1e9)
        while clock() < deadline_ns:
            time.sleep(0)  # releases the GIL while waiting out the last few microseconds

    def run_block(self, count: int, deadline_ns: int) -> Block:
        block = Block()
        offsets = self.schedule(count)
        starts: list[int] = [0] * count
        base = self.clock() + 1_000_000  # 1 ms lead so worker start-up is not "late"
        if self.call.is_async:
            self.call.run(self._async_block(base, deadline_ns, offsets, starts, block))
        else:
            assert self._pool is not None
            counter = itertools.count()
            lock = threading.Lock()
            futures = [
                self._pool.submit(
                    self._worker, base, deadline_ns, offsets, starts, counter, block, lock
                )
                for _ in range(self.concurrency)
            ]
            for f in futures:
                f.result()
        # A block of `count` arrivals stands for `count` inter-arrival gaps, but its first
        # request starts at offset 0: add the mean gap back, or throughput reads too high.
        block.wall_ns = self.clock() - base + int(1e9 / self.rate_rps)
        started = [(base + off, s) for off, s in zip(offsets, starts, strict=True) if s]
        # Requests whose time had come before the deadline but that no worker could start.
        block.not_issued = sum(
            1 for off, s in zip(offsets, starts, strict=True) if not s and base + off <= deadline_ns
        )
        if len(started) > 1:
            block.scheduled_span_ns = started[-1][0] - started[0][0]
            block.actual_span_ns = max(s for _, s in started) - min(s for _, s in started)
        return block

    def _record(
        self, block: Block, intended: int, start: int, end: int | None, exc: BaseException | None
    ) -> None:
        block.start_lags_ns.append(start - intended)
        if exc is not None:
            block.add_error(exc)
        elif end is not None:
            block.latencies_ns.append(end - intended)

    def _worker(
        self,
        base: int,
        deadline_ns: int,
        offsets: list[int],
        starts: list[int],
        counter: itertools.count[int],
        block: Block,
        lock: threading.Lock,
    ) -> None:
        fn, args, kwargs, clock = self.call.fn, self.call.args, self.call.kwargs, self.clock
        count = len(offsets)
        while (i := next(counter)) < count:
            intended = base + offsets[i]
            if intended > deadline_ns or clock() > deadline_ns:
                break
            if clock() < intended:
                self._sleep_until(intended)
            start = clock()
            starts[i] = start
            try:
                fn(*args, **kwargs)
            except Exception as exc:
                with lock:
                    self._record(block, intended, start, None, exc)
                continue
            end = clock()
            with lock:
                self._record(block, intended, start, end, None)

    async def _async_block(
        self, base: int, deadline_ns: int, offsets: list[int], starts: list[int], block: Block
    ) -> None:
        loop = asyncio.get_running_loop()
        clock, call = self.clock, self.call
        tasks: list[asyncio.Task[None]] = []

        async def one(i: int, intended: int) -> None:
            start = clock()
            starts[i] = start
            try:
                await call.coro()
            except Exception as exc:
                self._record(block, intended, start, None, exc)
                return
            self._record(block, intended, start, clock(), None)

        for i, offset in enumerate(offsets):
            intended = base + offset
            if intended > deadline_ns or clock() > deadline_ns:
                break
            # The event loop's timers fire up to ~1 ms late (epoll has ms resolution): sleep
            # to just short of the instant, then yield to other tasks until it comes.
            delay = intended - clock() - 1_500_000
            if delay > 0:
                await asyncio.sleep(delay / 1e9)
            while clock() < intended:
                await asyncio.sleep(0)
            tasks.append(loop.create_task(one(i, intended)))
        await asyncio.gather(*tasks)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
