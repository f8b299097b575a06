"""`compare` under an open loop (`rate_rps` in the plan): each side's block is its own arrival
schedule at the offered rate, the sides take turns, and unfinished requests can only move the
decision away from PASS."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from pytest_latency.core import compare as compare_module
from pytest_latency.core.compare import compare
from pytest_latency.core.spec import Spec
from pytest_latency.core.verdict import Decision


def _recorder(name: str, seconds: float, log: list[tuple[str, int, int]]) -> object:
    lock = threading.Lock()

    def call() -> None:
        start = time.perf_counter_ns()
        time.sleep(seconds)
        with lock:
            log.append((name, start, time.perf_counter_ns()))

    call.__qualname__ = name
    return call


def test_sides_take_turns_on_schedules_at_the_offered_rate() -> None:
    log: list[tuple[str, int, int]] = []
    slow = _recorder("slow", 0.02, log)
    fast = _recorder("fast", 0.0005, log)
    spec = Spec(p99_ms=1e3, rate_rps=100, warmup=0, max_time_s=30, min_samples=300)
    c = compare(slow, fast, min_speedup=2, block=60, spec=spec)  # type: ignore[arg-type]
    assert c.decision is Decision.PASS, c.summary()
    assert c.lower is not None, c.summary()
    assert c.lower >= 2, c.summary()
    timed = sorted(log[2:], key=lambda r: r[1])  # after the two cold calls
    # Turns: no call of one side starts before every earlier call of the other has ended.
    ended = {"slow": 0, "fast": 0}
    for name, start, end in timed:
        other = "fast" if name == "slow" else "slow"
        assert start >= ended[other], "the sides' blocks overlapped"
        ended[name] = max(ended[name], end)
    # Open loop: the slow side's calls overlap each other (20 ms each, 10 ms apart on average),
    # which a serial driver would never do.
    slow_calls = [r for r in timed if r[0] == "slow"]
    overlaps = sum(1 for x, y in itertools.pairwise(slow_calls) if y[1] < x[2])
    assert overlaps > len(slow_calls) // 10, overlaps
    starts = [r[1] for r in timed if r[0] == "fast"][:60]
    mean_gap_ms = (starts[-1] - starts[0]) / (len(starts) - 1) / 1e6
    assert 5 < mean_gap_ms < 20, mean_gap_ms  # 10 ms at 100 rps, Poisson


def test_unfinished_candidate_requests_cannot_make_a_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    # A block waits 30 ms for a request; 1 in 20 of the candidate's takes 120 ms. Its finished
    # requests are fast, but the unfinished ones count as +inf for its upper bound.
    monkeypatch.setattr(compare_module, "_DRAIN_NS", 30_000_000)
    calls = [0]

    def slow() -> None:
        time.sleep(0.004)

    def stalls() -> None:
        calls[0] += 1
        time.sleep(0.12 if calls[0] % 20 == 0 else 0.0003)

    spec = Spec(p99_ms=1e3, rate_rps=200, warmup=0, max_time_s=20, min_samples=300)
    c = compare(slow, stalls, min_speedup=2, block=60, spec=spec)
    assert c.decision is not Decision.PASS, c.summary()
    assert c.candidate.censored > 0
    assert c.lower is None
    assert c.reference.censored == 0


def test_a_plan_without_a_rate_keeps_the_serial_driver() -> None:
    overlapping = [0]
    active = [0]

    def fn() -> None:
        active[0] += 1
        overlapping[0] = max(overlapping[0], active[0])
        time.sleep(0.0005)
        active[0] -= 1

    spec = Spec(p99_ms=1e3, warmup=0, max_time_s=20)
    compare(fn, fn, min_speedup=0.5, block=20, spec=spec)
    assert overlapping[0] == 1


def test_async_sides_run_open_loop_on_the_loop_they_share() -> None:
    import asyncio

    async def slow() -> None:
        await asyncio.sleep(0.02)

    async def fast() -> None:
        await asyncio.sleep(0.001)

    spec = Spec(p99_ms=1e3, rate_rps=100, warmup=0, max_time_s=20, min_samples=200)
    c = compare(slow, fast, min_speedup=2, block=50, spec=spec)
    assert c.decision is Decision.PASS, c.summary()
    assert c.rounds >= 4, c.summary()
    assert c.reference.censored == 0
    assert c.candidate.censored == 0


def test_a_generator_behind_on_either_side_fails_the_comparison() -> None:
    # 32 worker threads and 0.5 s calls start at most 64 rps of the 100 offered: the reference's
    # requests start late, and their latencies (timed from the intended start) grow with the
    # generator's delay -- a speed-up the systems never showed. It must not PASS.
    def reference() -> None:
        time.sleep(0.5)

    def candidate() -> None:
        time.sleep(0.0005)

    spec = Spec(p99_ms=1e4, rate_rps=100, warmup=0, max_time_s=20, min_samples=100)
    c = compare(reference, candidate, min_speedup=2, quantile=0.5, block=100, spec=spec)
    assert c.decision is Decision.FAIL, c.summary()
    assert any("reference: the load generator fell behind" in p for p in c.problems), c.problems
    assert not any(p.startswith("candidate:") for p in c.problems), c.problems
