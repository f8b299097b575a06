"""Calls that never return: a time limit for the main thread, and worker threads that cannot
keep the interpreter alive.

A measurement gives up on a call that is still running ``max_time_s`` plus a grace after it
began (`grace_ns`). Where the call runs decides how:

* on the main thread (serial calls, the cold start, async callables on the fixture's loop),
  `watchdog` arms ``SIGALRM`` and raises `CallTimeout` in the call: blocking system calls
  (sockets, sleeps, lock waits) are interrupted, as pytest-timeout's ``signal`` method does;
* on worker threads (closed and open loops), the main thread waits with a timeout and
  abandons the worker. Workers are daemon threads (`DaemonPool`), so a thread stuck in a
  call never keeps pytest alive at exit -- ``concurrent.futures`` joins its threads at exit,
  which is why it is not used here.
"""

from __future__ import annotations

import contextvars
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .spec import PERCENTILE_KEYS, Spec

# Shortest grace after max_time_s before a running call is declared hung.
MIN_GRACE_NS = 1_000_000_000
# A watchdog whose CallTimeout was swallowed (a bare `except:` in the callable) fires again.
_REFIRE_S = 0.5


class CallTimeout(BaseException):
    """Raised in the main thread when a measured call outlives the measurement's time limit.

    A `BaseException`, like `KeyboardInterrupt`, so that ``except Exception`` in the code
    under test does not swallow it (a swallowed one is raised again every 0.5 s).
    """


def largest_target_ns(spec: Spec) -> int | None:
    """The largest latency limit of `spec` (percentiles, max, budget stages), in ns."""
    limits = [getattr(spec, key) for key in PERCENTILE_KEYS if getattr(spec, key) is not None]
    if spec.max_ms is not None:
        limits.append(spec.max_ms)
    limits.extend((spec.budget or {}).values())
    return round(max(limits) * 1_000_000) if limits else None


def grace_ns(spec: Spec) -> int:
    """How long past ``max_time_s`` a running call may go on before it counts as hung: the
    larger of 1 s and twice the largest latency target (a call that long has exceeded every
    target, so waiting longer could not change a verdict)."""
    largest = largest_target_ns(spec)
    return max(MIN_GRACE_NS, 2 * largest) if largest else MIN_GRACE_NS


@contextmanager
def watchdog(limit_ns: int, clock: Callable[[], int] = time.perf_counter_ns) -> Iterator[bool]:
    """Raise `CallTimeout` in the main thread once `clock()` passes `limit_ns`.

    Yields whether the watchdog is armed: it is a no-op off the main thread or where
    ``setitimer`` is missing. A timer and handler already installed (say, pytest-timeout's)
    are put back on exit, with the time that was left on the timer.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(
        signal, "setitimer"
    ):
        yield False
        return
    seconds = max((limit_ns - clock()) / 1e9, 1e-3)
    began = time.monotonic()

    def fire(signum: int, frame: Any) -> None:
        raise CallTimeout(f"call still running {seconds:.1f} s after the watchdog was armed")

    previous_handler = signal.signal(signal.SIGALRM, fire)
    previous_timer = signal.setitimer(signal.ITIMER_REAL, seconds, _REFIRE_S)
    try:
        yield True
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_timer[0] > 0:  # someone else's alarm: re-arm it with what was left
            left = previous_timer[0] - (time.monotonic() - began)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), previous_timer[1])


class DaemonPool:
    """Worker threads fed by an unbounded queue; daemon threads, started as they are needed.

    Jobs wait in the queue when every thread is busy (an open loop's requests then start late
    and are timed from their intended start). `close` never waits for a thread stuck in a call.
    Each thread runs in a copy of the context of the `submit` that started it, so context
    variables (the measurement's stage recorder) reach the calls and nothing else.
    """

    def __init__(self, size: int, name: str) -> None:
        self.size, self.name = size, name
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, job: Callable[[], None]) -> bool:
        """Queue `job`; False (and nothing queued) once the pool is closed."""
        with self._lock:
            if self._closed:
                return False
            if self._idle <= 0 and len(self._threads) < self.size:
                thread = threading.Thread(
                    target=contextvars.copy_context().run,
                    args=(self._work,),
                    name=f"{self.name}-{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(thread)
                self._idle += 1
                thread.start()
            self._idle -= 1
        self._jobs.put(job)
        return True

    @property
    def threads(self) -> int:
        return len(self._threads)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            finally:
                with self._lock:
                    self._idle += 1

    def close(self) -> None:
        """Ask every thread to exit after its current job; never waits."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            count = len(self._threads)
        for _ in range(count):
            self._jobs.put(None)
