"""Calls that never return: every mode gives up on them soon after ``max_time_s`` plus the
grace (1 s here), and the verdict is FAIL naming the call and how long it ran."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pytest_latency.core.hang import DaemonPool, grace_ns, watchdog
from pytest_latency.core.runner import measure
from pytest_latency.core.spec import Spec
from pytest_latency.core.verdict import Decision

MAX_TIME_S = 1.5
GRACE_S = 1.0  # grace_ns for these specs: max(1 s, 2 x 20 ms)


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """What stuck calls wait on; set at teardown so abandoned threads end."""
    event = threading.Event()
    yield event
    event.set()


def hang_on_call(n: int, block: Callable[[], Any]) -> Callable[[], None]:
    calls = itertools.count(1)

    def fn() -> None:
        if next(calls) == n:
            block()

    return fn


def timed_measure(fn: Callable[..., Any], **plan: Any) -> tuple[Any, float]:
    spec = Spec(p99_ms=20, max_time_s=MAX_TIME_S, warmup=10, **plan).resolved({})
    assert grace_ns(spec) == GRACE_S * 1e9
    t0 = time.perf_counter()
    m = measure(fn, spec=spec)
    return m, time.perf_counter() - t0


def assert_hung(m: Any, elapsed_s: float, name: str, ran_on_s: float = 0.0) -> None:
    assert m.verdict.decision is Decision.FAIL
    assert m.samples.hung >= 1
    assert m.samples.stopped_by == "hung"
    summary = m.verdict.summary()
    assert "did not return" in summary, summary
    assert name in summary, summary
    assert f"grace of {GRACE_S:g} s" in summary
    # Given up on at max_time_s + grace (from the start), not later; 1.5 s of slack for a
    # busy machine.
    assert elapsed_s < MAX_TIME_S + GRACE_S + ran_on_s + 1.5, elapsed_s


def test_a_serial_call_that_never_returns_fails_soon_after_the_budget() -> None:
    fn = hang_on_call(40, lambda: time.sleep(3600))
    m, elapsed = timed_measure(fn)
    assert_hung(m, elapsed, "hang_on_call.<locals>.fn")
    assert m.samples.n > 0  # what was timed before the hang is kept


def test_a_cold_start_call_that_never_returns_fails_soon_after_the_budget(
    gate: threading.Event,
) -> None:
    def stuck() -> None:
        gate.wait()  # a lock wait, interrupted by the watchdog's signal

    m, elapsed = timed_measure(stuck)
    assert_hung(m, elapsed, "stuck")
    assert m.samples.cold_start_ns is None
    assert m.samples.n == 0


def test_a_closed_loop_worker_thread_that_never_returns_is_abandoned(
    gate: threading.Event,
) -> None:
    fn = hang_on_call(40, gate.wait)
    m, elapsed = timed_measure(fn, concurrency=4)
    assert_hung(m, elapsed, "hang_on_call.<locals>.fn")


@pytest.mark.parametrize("concurrency", [1, 4])
def test_an_async_call_that_never_completes_is_cancelled(concurrency: int) -> None:
    calls = itertools.count(1)

    async def request() -> None:
        if next(calls) == 40:
            await asyncio.Event().wait()

    m, elapsed = timed_measure(request, concurrency=concurrency)
    assert_hung(m, elapsed, "request")


def test_an_async_call_that_blocks_the_event_loop_is_interrupted() -> None:
    calls = itertools.count(1)

    async def request() -> None:
        if next(calls) == 40:
            time.sleep(3600)  # blocks the loop itself: only a signal gets through

    m, elapsed = timed_measure(request)
    assert_hung(m, elapsed, "request")


def test_a_swallowed_timeout_is_raised_again() -> None:
    def stubborn() -> None:
        try:
            time.sleep(3600)
        except BaseException:  # the code under test being rude
            time.sleep(3600)  # and carrying on waiting

    m, elapsed = timed_measure(stubborn)
    assert_hung(m, elapsed, "stubborn")


def test_a_call_that_returns_only_after_swallowing_every_timeout_still_fails() -> None:
    ran_on_s = 1.2  # past the limit, swallowing each timeout

    def stubborn() -> None:
        deadline = time.perf_counter() + MAX_TIME_S + GRACE_S + ran_on_s
        while time.perf_counter() < deadline:
            try:
                time.sleep(0.05)
            except BaseException:  # swallows the watchdog every time
                continue

    m, elapsed = timed_measure(stubborn)
    assert_hung(m, elapsed, "stubborn", ran_on_s)


def test_the_watchdog_puts_back_an_alarm_that_was_already_set() -> None:
    import signal

    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with watchdog(time.perf_counter_ns() + 5_000_000_000):
            pass
        left = signal.getitimer(signal.ITIMER_REAL)[0]
        assert 0.3 < left <= 0.5
        time.sleep(0.6)
        assert fired == [1]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_daemon_pool_threads_never_keep_the_interpreter_alive(gate: threading.Event) -> None:
    pool = DaemonPool(2, "t")
    pool.submit(gate.wait)
    pool.close()
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("t-"))
    assert not pool.submit(lambda: None)  # closed: nothing more is queued


def test_a_comparison_whose_candidate_hangs_fails_instead_of_waiting_forever() -> None:
    from pytest_latency.core.compare import compare

    fn = hang_on_call(30, lambda: time.sleep(3600))
    t0 = time.perf_counter()
    c = compare(
        lambda: time.sleep(0.001),
        fn,
        min_speedup=1.1,
        block=10,
        spec=Spec(p99_ms=20, warmup=5, max_time_s=MAX_TIME_S),
        names=("base", "cand"),
    )
    assert c.decision is Decision.FAIL
    assert c.summary().startswith("FAIL: cand: 1 call(s) did not return")
    assert time.perf_counter() - t0 < MAX_TIME_S + GRACE_S + 1.5
