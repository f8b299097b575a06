"""Coordinated omission over long stalls: one arrival schedule for the whole measurement,
unfinished requests censored at ``end - intended`` and counted as exceedances.

Each test freezes a "server" (every call waits until the freeze ends) and compares the
percentiles the runner reports with what the offered schedule implies: at ``RATE`` requests
per second, constant gaps, the requests due during a freeze of ``F`` seconds wait ``F``,
``F - 1/RATE``, ... -- computed here from the schedule, not from the samples.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from pytest_latency.core.openloop import OPEN_LOOP_THREADS
from pytest_latency.core.runner import measure
from pytest_latency.core.spec import Spec
from pytest_latency.core.verdict import Decision

RATE = 100
WARMUP = 20
GAP_NS = 1_000_000_000 // RATE


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]


class FreezingServer:
    """Answers at once, except that from its `freeze_at`-th call on (counting the cold call)
    every call waits until the freeze is over: `freeze_s` later, or never (`None`) until
    `release` -- a server that stops answering."""

    def __init__(self, freeze_at: int, freeze_s: float | None) -> None:
        self.freeze_at, self.freeze_s = freeze_at, freeze_s
        self.calls = itertools.count(1)
        self.frozen_at_ns: int | None = None
        self.thaw_ns: int | None = None
        self.released = threading.Event()

    def __call__(self) -> None:
        if next(self.calls) == self.freeze_at:
            self.frozen_at_ns = time.perf_counter_ns()
            if self.freeze_s is not None:
                self.thaw_ns = self.frozen_at_ns + int(self.freeze_s * 1e9)
        if self.frozen_at_ns is None:
            return
        if self.thaw_ns is None:
            self.released.wait()
            return
        wait = (self.thaw_ns - time.perf_counter_ns()) / 1e9
        if wait > 0:
            time.sleep(wait)

    def release(self) -> None:
        self.released.set()


@pytest.fixture
def servers() -> Iterator[list[FreezingServer]]:
    made: list[FreezingServer] = []
    yield made
    for server in made:  # let stuck worker threads go
        server.release()


def test_a_freeze_across_block_boundaries_delays_every_request_due_during_it(
    servers: list[FreezingServer],
) -> None:
    # The freeze starts 1.5 s into the timed requests and lasts 3 s: it spans the end of
    # the first 2-second block and all of the second. 600 samples before the first look,
    # so it comes after the freeze and every delayed request has its real latency.
    freeze_s = 3.0
    server = FreezingServer(freeze_at=1 + WARMUP + 150, freeze_s=freeze_s)
    servers.append(server)
    spec = Spec(
        p90_ms=100,
        rate_rps=RATE,
        arrivals="constant",
        warmup=WARMUP,
        min_samples=600,
        max_time_s=30,
    ).resolved({})
    m = measure(server, spec=spec)
    s = m.samples
    total = s.n + s.errors + s.censored
    assert s.censored == 0
    assert s.errors == 0
    assert total >= 600
    # What the schedule implies: the M = freeze_s * RATE requests due during the freeze
    # waited freeze_s - k / RATE (k = 0 .. M-1); the others were answered at once. A
    # schedule restarted after the freeze would lose the 250 requests due after the first
    # block's end, and p75 (1.5 s here) would read as a fraction of a millisecond.
    frozen = [freeze_s - k / RATE for k in range(int(freeze_s * RATE))]
    expected = frozen + [0.0] * (total - len(frozen))
    reported = s.sorted_ns() / 1e9
    for q in (0.75, 0.9, 0.99):
        want = nearest_rank(expected, q)
        got = float(reported[math.ceil(q * total) - 1])
        assert got == pytest.approx(want, abs=0.05), (q, got, want)
    assert int((s.latencies_ns > 100_000_000).sum()) >= 0.95 * (len(frozen) - 10)
    # 32 worker threads started their request on time and froze in it; the rest queued
    # and started late, each timed from its intended start.
    assert s.load.late >= 0.9 * (len(frozen) - OPEN_LOOP_THREADS)
    assert s.load.not_issued == 0  # all started in the end
    assert m.verdict.decision is Decision.FAIL
    row = next(t for t in m.verdict.targets if t.metric == "p90")
    assert row.lower is not None
    assert row.lower > 1000


def test_a_freeze_past_the_end_counts_each_unfinished_request_from_its_intended_start(
    servers: list[FreezingServer],
) -> None:
    server = FreezingServer(freeze_at=1 + WARMUP + 100, freeze_s=None)
    servers.append(server)
    max_time_s = 4.0
    spec = Spec(
        p90_ms=50,
        rate_rps=RATE,
        arrivals="constant",
        warmup=WARMUP,
        min_samples=2000,  # no look before the time budget ends
        max_time_s=max_time_s,
    ).resolved({})
    t0 = time.perf_counter_ns()
    m = measure(server, spec=spec)
    elapsed_s = (time.perf_counter_ns() - t0) / 1e9
    s = m.samples
    assert server.frozen_at_ns is not None
    end_ns = t0 + int(max_time_s * 1e9)
    # The schedule: one request every 10 ms from the freeze to the end of max_time_s.
    due = (end_ns - server.frozen_at_ns) // GAP_NS
    assert abs(s.censored - due) <= 0.05 * due + 3, (s.censored, due)
    bounds = np.sort(s.censored_ns)
    assert np.median(np.diff(bounds)) == pytest.approx(GAP_NS, rel=0.05)
    assert bounds[-1] / 1e9 == pytest.approx((end_ns - server.frozen_at_ns) / 1e9, abs=0.15)
    # Reported percentiles: the answered requests near 0, the unanswered at their bounds.
    total = s.n + s.censored
    expected = [0.0] * s.n + [(end_ns - server.frozen_at_ns) / 1e9 - k / RATE for k in range(due)]
    reported = s.sorted_ns() / 1e9
    for q in (0.5, 0.9, 0.99):
        got = float(reported[math.ceil(q * total) - 1])
        assert got == pytest.approx(nearest_rank(expected, q), abs=0.1), q
    assert m.verdict.decision is Decision.FAIL
    assert s.load.censored == s.censored
    assert s.hung > 0
    assert "did not return" in m.verdict.summary()
    assert elapsed_s < max_time_s + 1.0 + 2.0  # the budget, the 1 s grace, slack


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_server_that_never_answers_fails_with_percentiles_the_schedule_implies(
    kind: str, servers: list[FreezingServer]
) -> None:
    max_time_s = 3.0
    spec = Spec(
        p50_ms=20, rate_rps=RATE, arrivals="constant", warmup=WARMUP, max_time_s=max_time_s
    ).resolved({})
    if kind == "sync":
        server = FreezingServer(freeze_at=2, freeze_s=None)  # answers the cold call only
        servers.append(server)
        fn = server
    else:
        calls = itertools.count()

        async def fn() -> None:
            if next(calls):
                await asyncio.Event().wait()  # never set

    t0 = time.perf_counter_ns()
    m = measure(fn, spec=spec)
    elapsed_s = (time.perf_counter_ns() - t0) / 1e9
    s = m.samples
    assert s.n == 0
    assert s.censored > 0
    # Every timed request waited from its intended start to the end: their bounds are
    # spread evenly over the timed part of the budget, so p50 is about half of it.
    bounds = np.sort(s.censored_ns)
    span_s = (bounds[-1] - bounds[0]) / 1e9
    assert s.censored == pytest.approx(span_s * RATE + 1, rel=0.05)
    p50_row = next(t for t in m.verdict.targets if t.metric == "p50")
    assert p50_row.observed == pytest.approx(
        1000 * float(nearest_rank(list(bounds / 1e9), 0.5)), rel=0.01
    )
    # A block waits for its requests until each has outlived every target: each censored
    # request is a certain exceedance, so FAIL is decided at the first look.
    assert bounds[0] > 20_000_000
    assert p50_row.exceedances == s.censored
    assert p50_row.decision is Decision.FAIL
    assert m.verdict.decision is Decision.FAIL
    assert s.hung > 0
    assert elapsed_s < max_time_s + 1.0 + 2.0
