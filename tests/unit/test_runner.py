"""The measurement loop on real callables: cold start, warm-up, budgets, errors, GC."""

from __future__ import annotations

import gc
import time

import pytest

from pytest_latency.core.runner import first_look_samples, measure
from pytest_latency.core.spec import Spec
from pytest_latency.core.verdict import Decision
from pytest_latency.core.warmup import WarmupPolicy, is_steady, next_window_size


def _spec(**kw: object) -> Spec:
    return Spec(**kw).resolved({})  # type: ignore[arg-type]


def test_first_call_is_kept_apart_as_the_cold_start() -> None:
    calls = []

    def fn() -> None:
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.05)

    m = measure(fn, spec=_spec(p50_ms=20, warmup=0))
    assert m.samples.cold_start_ns is not None
    assert m.samples.cold_start_ns >= 50_000_000
    assert int(m.samples.latencies_ns.max()) < 50_000_000
    assert len(calls) == 1 + m.samples.n


def test_warmup_by_count_runs_exactly_that_many_untimed_calls() -> None:
    calls = []
    m = measure(lambda: calls.append(1), spec=_spec(p50_ms=20, warmup=37))
    assert m.samples.warmup is not None
    assert m.samples.warmup.calls == 37
    assert len(calls) == 1 + 37 + m.samples.n


def test_auto_warmup_stops_once_window_medians_settle() -> None:
    m = measure(sum, ([1, 2, 3],), spec=_spec(p50_ms=20))
    warm = m.samples.warmup
    assert warm is not None
    assert warm.mode == "auto"
    assert warm.steady
    assert warm.calls < WarmupPolicy().max_calls


def test_steady_state_needs_consecutive_windows_within_tolerance() -> None:
    policy = WarmupPolicy(tolerance=0.1, stable_windows=3)
    assert not is_steady([900, 500, 100], policy)
    assert not is_steady([100, 101], policy)
    assert is_steady([900, 104, 100, 98], policy)
    assert next_window_size(1_000_000, policy) == 20  # 20 ms of 1 ms calls
    assert next_window_size(10, policy) == policy.max_window


def test_sampling_stops_at_the_first_look_that_decides() -> None:
    spec = _spec(p99_ms=50)
    m = measure(sum, ([1],), spec=spec)
    assert m.verdict.decision is Decision.PASS
    assert m.samples.n == first_look_samples(spec)
    assert m.samples.looks == 1


def test_max_samples_ends_an_undecidable_measurement() -> None:
    m = measure(sum, ([1],), spec=_spec(p99_ms=50, max_samples=120))
    assert m.verdict.decision is Decision.INCONCLUSIVE  # 120 samples cannot bound p99
    assert m.samples.stopped_by == "max_samples"
    assert m.samples.n == 120


def test_time_budget_ends_the_measurement() -> None:
    t0 = time.perf_counter()
    m = measure(time.sleep, (0.01,), spec=_spec(p99_ms=50, max_time_s=0.5, warmup=0))
    elapsed = time.perf_counter() - t0
    assert m.samples.stopped_by == "max_time"
    assert elapsed < 1.5
    assert m.verdict.decision is Decision.INCONCLUSIVE


def test_exceptions_are_counted_never_timed_and_the_first_traceback_is_kept() -> None:
    n = iter(range(10**9))

    def flaky() -> None:
        if next(n) % 2:
            raise ConnectionError("backend said no")

    m = measure(flaky, spec=_spec(p50_ms=20, max_error_rate=0.6, warmup=0))
    assert m.samples.errors > 0
    assert abs(m.samples.errors - m.samples.n) <= 1
    assert m.samples.first_error is not None
    assert "backend said no" in m.samples.first_error
    assert m.verdict.decision is Decision.PASS


def test_a_callable_that_always_raises_fails_fast() -> None:
    def broken() -> None:
        raise KeyError("model")

    t0 = time.perf_counter()
    m = measure(broken, spec=_spec(p99_ms=10))
    assert m.verdict.decision is Decision.FAIL
    assert m.samples.n == 0
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize(("mode", "expected"), [("off", False), ("on", True)])
def test_gc_is_off_inside_timed_blocks_unless_asked_for(mode: str, expected: bool) -> None:
    seen = []
    was = gc.isenabled()
    measure(lambda: seen.append(gc.isenabled()), spec=_spec(p50_ms=20, warmup=0, gc=mode))
    assert set(seen[1:]) == {expected}  # seen[0] is the cold call, outside the blocks
    assert gc.isenabled() == was


def test_async_callables_run_on_an_event_loop() -> None:
    import asyncio

    async def op() -> None:
        await asyncio.sleep(0)

    m = measure(op, spec=_spec(p50_ms=20, concurrency=3))
    assert m.verdict.decision is Decision.PASS
    assert m.samples.load.concurrency == 3


def test_compare_alternates_blocks_and_detects_a_real_speedup() -> None:
    from pytest_latency.core.compare import compare

    order: list[str] = []

    def slow() -> None:
        order.append("b")
        time.sleep(0.002)

    def fast() -> None:
        order.append("c")
        time.sleep(0.0003)

    c = compare(slow, fast, min_speedup=2, block=20, spec=Spec(p99_ms=1e3, warmup=0, max_time_s=20))
    assert c.decision is Decision.PASS
    assert c.lower is not None
    assert c.lower >= 2
    timed = "".join(order[2:])  # after the two cold calls
    runs = [len(r) for r in timed.replace("bc", "b|c").replace("cb", "c|b").split("|")]
    assert max(runs[1:-1]) <= 40
    assert min(runs[1:-1]) >= 20


def test_compare_fails_when_the_candidate_is_not_faster() -> None:
    from pytest_latency.core.compare import compare

    c = compare(
        time.sleep,
        time.sleep,
        (0.0005,),
        min_speedup=2,
        spec=Spec(p99_ms=1e3, warmup=0, max_time_s=20),
    )
    assert c.decision is Decision.FAIL
    assert c.upper is not None
    assert c.upper < 2
