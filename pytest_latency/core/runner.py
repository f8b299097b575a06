"""The measurement loop: cold start, warm-up, then timed blocks with sequential looks.

    >>> from pytest_latency.core import Spec, measure
    >>> m = measure(sorted, ([3, 1, 2],), spec=Spec(p99_ms=5).resolved({}))
    >>> m.verdict.passed
    True

Plan, per call of `measure`:

1. The first call is timed on its own and kept apart as the cold start.
2. Warm-up: a fixed count, or ``"auto"`` (windows until their medians settle; see `warmup`).
3. Timed blocks, garbage collection off inside each block by default (young generations are
   collected between blocks). After ``n1`` samples -- the fewest that could show every
   percentile target met at the first look -- and at every doubling of ``n`` after that, the
   samples are evaluated (`evaluate`). Sampling stops as soon as every target is decided (or
   any target fails), or when ``max_samples`` / ``max_time_s`` is spent.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from statistics import median
from typing import Any

from .collector import Collector
from .drivers import (
    Block,
    Call,
    ClosedLoopDriver,
    Driver,
    SerialDriver,
    check_result,
)
from .evaluate import evaluate
from .hang import CallTimeout, grace_ns, largest_target_ns, watchdog
from .openloop import OpenLoopDriver
from .samples import Samples, WarmupStats
from .spec import Spec, SpecError
from .stages import StageRecorder, measuring, recording
from .stats import min_samples_for_quantile
from .verdict import Decision, Verdict, look_alpha
from .warmup import WarmupPolicy, is_steady, next_window_size

Clock = Callable[[], int]
# Builds the driver of a measurement: (call, resolved spec, clock, drain_ns) -> driver.
DriverFactory = Callable[[Call, Spec, Clock, int], Driver]

# Blocks last about this long, so the time budget is checked and GC runs at this granularity.
BLOCK_TARGET_NS = 200_000_000
# Open loops run longer blocks: the load pauses briefly between blocks.
OPEN_BLOCK_TARGET_NS = 2_000_000_000
DEFAULT_MIN_SAMPLES = 100  # floor of the first look unless min_samples says otherwise


@dataclass(frozen=True)
class Progress:
    """Reported after every look and between timed blocks (never inside one): enough for a
    progress line. ``verdict`` is the latest look's (``None`` before the first look);
    ``next_look`` is the sample count of the next look; ``done`` marks the last report of a
    measurement."""

    n: int
    look: int
    verdict: Verdict | None
    elapsed_s: float
    time_left_s: float
    next_look: int = 0
    done: bool = False


@dataclass(frozen=True)
class Measurement:
    samples: Samples
    verdict: Verdict


def is_async_callable(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 -- objects with an async __call__
    )


def first_look_samples(spec: Spec) -> int:
    """Samples before the first look: enough that zero exceedances could pass every target."""
    confidence = spec.confidence if spec.confidence is not None else 0.95
    alpha = look_alpha(confidence, 1)
    quantiles = [q for q, _ in spec.percentile_targets] + [0.99] * len(spec.budget or {})
    needed = [min_samples_for_quantile(q, 1 - alpha) for q in quantiles]
    floor = spec.min_samples if spec.min_samples is not None else DEFAULT_MIN_SAMPLES
    n1 = max([*needed, floor])
    if spec.max_samples is not None:
        n1 = min(n1, spec.max_samples)
    return n1


def make_driver(call: Call, spec: Spec, clock: Clock) -> Driver:
    if spec.rate_rps is not None:
        # A block waits for its unfinished requests only until they exceed every latency
        # target: waiting longer could not change a decision.
        return OpenLoopDriver(
            call,
            spec.rate_rps,
            spec.arrivals or "poisson",
            spec.seed,
            clock,
            drain_ns=largest_target_ns(spec) or grace_ns(spec),
        )
    if spec.concurrency and spec.concurrency > 1:
        return ClosedLoopDriver(call, spec.concurrency, clock)
    return SerialDriver(call, clock)


def run_guarded(driver: Driver, count: int, deadline_ns: int) -> Block:
    """`driver.run_block` with the main thread's watchdog armed at `driver.hard_ns`.

    Calls that run on this thread (serial ones, async ones on the fixture's loop) are
    interrupted there; worker threads are watched by the drivers themselves. A call the
    watchdog stopped comes back as a block with ``hung`` set.
    """
    on_this_thread = driver.mode == "serial" or (driver.call.is_async and driver.mode != "open")
    if driver.hard_ns is None or not on_this_thread:
        return driver.run_block(count, deadline_ns)
    started = driver.clock()
    try:
        with watchdog(driver.hard_ns, driver.clock):
            block = driver.run_block(count, deadline_ns)
    except CallTimeout:  # fired outside the driver's own handler: keep what it had
        block = driver.partial or Block()
    late_ns = driver.clock() - driver.hard_ns
    if late_ns > 0 and not block.hung:
        # The call swallowed every CallTimeout and came back past the limit anyway.
        block.add_hung(1, late_ns + (driver.hard_ns - started))
    return block


def _warmup(driver: Driver, spec: Spec, deadline_ns: int, clock: Clock) -> WarmupStats:
    start = clock()
    if spec.warmup != "auto":
        count = int(spec.warmup or 0)
        block = run_guarded(driver, count, deadline_ns) if count else Block()
        return WarmupStats("count", count, False, clock() - start, block.errors, block.hung)
    policy = WarmupPolicy()
    max_time_s = spec.max_time_s or 30.0
    bound_ns = start + int(max_time_s * policy.max_time_share * 1e9)
    medians: list[float] = []
    calls = 0
    size = policy.min_window
    if driver.mode == "open" and spec.rate_rps:
        size = max(policy.min_window, int(spec.rate_rps * 0.1))
    steady = False
    errors = hung = 0
    while calls < policy.max_calls and clock() < min(bound_ns, deadline_ns):
        block = run_guarded(driver, size, min(bound_ns, deadline_ns))
        calls += len(block.latencies_ns) + block.errors
        errors += block.errors
        if block.hung:
            hung = block.hung
            break
        if not block.latencies_ns:
            if block.errors == 0:
                break
            continue
        medians.append(median(block.latencies_ns))
        if is_steady(medians, policy):
            steady = True
            break
        if driver.mode != "open":
            size = next_window_size(medians[-1] / driver.concurrency, policy)
    return WarmupStats("auto", calls, steady, clock() - start, errors, hung)


def measure(
    fn: Callable[..., Any],
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    spec: Spec,
    clock: Clock = time.perf_counter_ns,
    loop: asyncio.AbstractEventLoop | None = None,
    progress: Callable[[Progress], None] | None = None,
    driver_factory: DriverFactory | None = None,
    check: Callable[[Any], object] | None = None,
) -> Measurement:
    """Measure `fn(*args, **kwargs)` under `spec` (already `Spec.resolved`) and decide it.

    `check` judges each answer for a goodput target (truthy: right); it runs after the
    call's timing, and a spec with ``goodput`` needs it.

    Async callables run on `loop` (one is created and closed here when none is given).
    `driver_factory` replaces the in-process drivers (e.g. `distributed.LocustDriver`,
    whose requests run on Locust workers; `fn` then only names the measurement).
    A sync callable that returns a coroutine, awaitable, generator or future raises
    `NotTimedError` after its first call: timing it would time nothing.
    """
    if spec.goodput is not None and check is None:
        raise SpecError(
            f"goodput={spec.goodput:g} needs check=: a function that takes each call's answer "
            "and returns whether it is right, e.g. latency(model.predict, text, "
            "check=lambda label: label == expected)"
        )
    if check is not None and not callable(check):
        raise SpecError(f"check={check!r} is not valid; expected a callable answer -> bool")
    own_loop = None
    if is_async_callable(fn) and loop is None:
        loop = own_loop = asyncio.new_event_loop()
    call = Call(fn, args, kwargs or {}, loop if is_async_callable(fn) else None, check)
    gc_was_enabled = gc.isenabled()
    with measuring():  # before the driver: its threads and tasks inherit this context
        if driver_factory is not None:
            drain_ns = largest_target_ns(spec) or grace_ns(spec)
            driver = driver_factory(call, spec, clock, drain_ns)
        else:
            driver = make_driver(call, spec, clock)
        try:
            return _measure(call, driver, spec, clock, progress, gc_was_enabled)
        finally:
            driver.close()
            # Leave the collector as the caller had it (a test may have disabled it itself).
            if gc_was_enabled:
                gc.enable()
            else:
                gc.disable()
            if own_loop is not None and not own_loop.is_running():
                own_loop.close()


def cold_start(call: Call, clock: Clock, deadline_ns: int, hard_ns: int) -> Block:
    """The first call, timed on its own; a sync call's return value is checked for work
    left undone (`check_result`)."""
    if call.is_async:
        driver = SerialDriver(call, clock)
        driver.hard_ns = hard_ns
        return run_guarded(driver, 1, deadline_ns)
    block = Block()
    t0 = clock()
    try:
        with watchdog(hard_ns, clock):
            try:
                value = call.bound()()
            except Exception as exc:  # the callable's failure is data, not our crash
                block.add_error(exc)
                return block
            block.latencies_ns.append(clock() - t0)
    except CallTimeout:
        block.add_hung(1, clock() - t0)
        return block
    if clock() > hard_ns:  # it swallowed every CallTimeout and came back past the limit
        block.latencies_ns.clear()
        block.add_hung(1, clock() - t0)
        return block
    check_result(call.fn, value)
    return block


def _measure(
    call: Call,
    driver: Driver,
    spec: Spec,
    clock: Clock,
    progress: Callable[[Progress], None] | None,
    gc_was_enabled: bool = True,
) -> Measurement:
    max_time_s = spec.max_time_s if spec.max_time_s is not None else 30.0
    max_samples = spec.max_samples or 200_000
    t_begin = clock()
    deadline = t_begin + int(max_time_s * 1e9)
    grace = grace_ns(spec)
    driver.hard_ns = deadline + grace
    if isinstance(driver, OpenLoopDriver):
        driver.horizon_ns = deadline  # one schedule, from the first warm-up request to here
    collected = Collector()
    gc_off = spec.gc != "on"
    if gc_off:
        # A full collection here, before any load: an open loop's schedule runs on from the
        # warm-up into the timed blocks, so a pause between them would delay requests.
        gc.collect()

    cold = (
        cold_start(call, clock, deadline, deadline + grace)
        if driver.measures_cold_start
        else Block()
    )
    cold_ns = cold.latencies_ns[0] if cold.latencies_ns else None
    collected.errors += cold.errors
    collected.first_error = cold.first_error
    collected.hung += cold.hung
    collected.hung_waited_ns = cold.hung_waited_ns

    warm = (
        WarmupStats(str(spec.warmup if spec.warmup == "auto" else "count"), 0, False, 0)
        if collected.hung
        else _warmup(driver, spec, deadline, clock)
    )
    if warm.hung:
        collected.hung += warm.hung
        collected.hung_waited_ns = max(collected.hung_waited_ns, clock() - t_begin)

    if gc_off:
        gc.collect(1 if driver.mode == "open" else 2)
    per_call_ns = _per_call_estimate(driver, cold_ns, warm)
    target_ns = OPEN_BLOCK_TARGET_NS if driver.mode == "open" else BLOCK_TARGET_NS
    if driver.mode == "open" and spec.rate_rps:
        block_cap = max(1, int(spec.rate_rps * target_ns / 1e9))
    else:
        block_cap = max(1, int(target_ns / per_call_ns)) if per_call_ns > 0 else 10_000

    recorder = StageRecorder()  # spans from pytest_latency.stage, timed blocks only
    next_look = first_look_samples(spec)
    look = 0
    stopped_by = "decided"
    verdict: Verdict | None = None
    samples: Samples | None = None
    while True:
        want = min(next_look, max_samples) - collected.calls
        if want > 0 and clock() < deadline and not collected.hung:
            if gc_off:
                gc.disable()
            try:
                with recording(recorder):
                    block = run_guarded(driver, min(want, block_cap), deadline)
            finally:
                if gc_off and gc_was_enabled:
                    gc.enable()
                if gc_off:
                    gc.collect(1)
            collected.add(block)
            produced = len(block.latencies_ns) + block.errors + len(block.censored)
            # Calls, failed or not, count toward the next look, so a callable that keeps
            # raising still reaches a decision. With no error budget the first error decides
            # (FAIL) at once; with a budget the rate is judged at the look, not mid-way.
            if (
                collected.calls < min(next_look, max_samples)
                and produced
                and not (collected.errors and spec.max_error_rate == 0)
                and not collected.hung
                and clock() < deadline
            ):
                if progress is not None:  # between blocks: one call, no evaluation
                    now = clock()
                    progress(
                        Progress(
                            collected.n,
                            look,
                            verdict,
                            (now - t_begin) / 1e9,
                            max(0.0, (deadline - now) / 1e9),
                            next_look,
                        )
                    )
                continue
        look += 1
        samples = collected.samples(cold_ns, look, warm, driver, spec, recorder, call)
        verdict = evaluate(samples, spec, look)
        now = clock()
        stop = (
            "hung"
            if collected.hung
            else "decided"
            if verdict.decision is not Decision.INCONCLUSIVE
            else "max_samples"
            if collected.calls >= max_samples
            else "max_time"
            if now >= deadline
            else None
        )
        if stop is not None:
            # Requests still unfinished get a grace; those still running then are hung.
            tail = driver.finish(grace)
            if tail is not None and tail.hung:
                collected.add(tail)
                stop = "hung"
                samples = collected.samples(cold_ns, look, warm, driver, spec, recorder, call)
                verdict = evaluate(samples, spec, look)
        else:
            next_look = min(next_look * 2, max_samples)
        if progress is not None:
            progress(
                Progress(
                    collected.n,
                    look,
                    verdict,
                    (now - t_begin) / 1e9,
                    max(0.0, (deadline - now) / 1e9),
                    next_look,
                    done=stop is not None,
                )
            )
        if stop is not None:
            stopped_by = stop
            break
    assert samples is not None and verdict is not None
    samples = replace(samples, stopped_by=stopped_by)
    return Measurement(samples, verdict)


def _per_call_estimate(driver: Driver, cold_ns: int | None, warm: WarmupStats) -> float:
    """Rough ns per completed call (all workers together), for sizing blocks."""
    if warm.calls and warm.duration_ns:
        return warm.duration_ns / warm.calls
    if cold_ns:
        return cold_ns / max(1, driver.concurrency)
    return 0.0
