"""Open loops: requests start on a schedule whatever the replies do, and each latency counts
from the request's intended start (coordinated-omission correction).

Every run here offers 200 rps: cold start, 20 warm-up requests, then one timed block of 100
requests (0.5 s), which decides ``p50_ms`` at the first look.
"""

from __future__ import annotations

import pytest


def test_open_loop_at_a_constant_rate_reports_the_load_it_offered(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slo(p50_ms=50, rate_rps=200, arrivals="constant", warmup=20)
        def test_open(latency):
            result = latency(sorted, [3, 2, 1])
            load = result.samples.load
            assert load.mode == "open"
            assert load.offered_rps == 200 and load.arrivals == "constant"
            assert load.issued == result.n >= 100
            assert load.not_issued == 0
            assert 0 <= load.late <= load.issued
            # The generator kept up (the verdict's own criterion, >= 90 %); a late burst can
            # compress the starts of a 0.5 s block, not halve its span.
            assert 0.9 * 200 <= load.achieved_rps < 2 * 200
            assert load.start_lag_p50_ns is not None
            assert result.verdict.problems == ()
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_missed_open_loop_slo_shows_the_offered_load_in_its_context_line(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import time
        import pytest

        @pytest.mark.slo(p50_ms=0.5, rate_rps=200, arrivals="constant", warmup=5, min_samples=20)
        def test_open(latency):
            latency(time.sleep, 0.002)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*FAIL: p50 is over 0.5 ms*",
            "*open loop 200 rps constant: 20 issued, * started >1 ms late, 0 not issued, "
            "start lag p99 * ms*; * rps; warm-up 5 calls (count)*",
        ]
    )


# The service behind the callable is serialised (one request at a time, as behind a lock or a
# single-threaded server) and stalls once, for 200 ms, at request STALL_AT -- in the middle of
# the first timed block (cold start 1 + warm-up 20 calls, then 100 timed requests at 200 rps).
STALLING_SYNC = """
import itertools
import threading
import time
import pytest

STALL_AT = 60
service = threading.Lock()
counter = itertools.count(1)

def call_service():
    with service:
        if next(counter) == STALL_AT:
            time.sleep(0.2)

def slow_samples(result):
    return int((result.samples_ns > 50_000_000).sum())
"""


def test_open_loop_counts_requests_queued_behind_a_stall_from_their_intended_start(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        STALLING_SYNC
        + """
@pytest.mark.slo(p50_ms=1000, rate_rps=200, arrivals="constant", warmup=20)
def test_open(latency):
    result = latency(call_service)
    # ~40 requests were due during the stall; those due in its first 150 ms waited > 50 ms.
    slow = slow_samples(result)
    assert slow >= 20, slow
    assert result.percentiles_ms["max"] >= 150
"""
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_closed_loop_serial_measurement_of_the_same_stall_shows_one_slow_sample(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        STALLING_SYNC
        + """
@pytest.mark.slo(p50_ms=1000, warmup=20)
def test_serial(latency):
    result = latency(call_service)
    # One call after another: the stall delays the next call's *start*, so only the
    # stalled call itself is timed as slow (coordinated omission).
    assert result.n >= 100
    assert 1 <= slow_samples(result) <= 2
"""
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_async_open_loop_counts_requests_queued_behind_a_stall(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import itertools
        import pytest

        STALL_AT = 60
        counter = itertools.count(1)
        service = None

        async def call_service():
            global service
            service = service or asyncio.Lock()  # created on the fixture's loop
            async with service:
                if next(counter) == STALL_AT:
                    await asyncio.sleep(0.2)

        @pytest.mark.slo(p50_ms=1000, rate_rps=200, arrivals="constant", warmup=20)
        def test_open(latency):
            result = latency(call_service)
            slow = int((result.samples_ns > 50_000_000).sum())
            assert slow >= 20, slow
            assert result.samples.load.concurrency == 0  # tasks, not threads
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_open_loop_times_requests_it_could_not_start_during_a_stall_from_their_schedule(
    pytester: pytest.Pytester,
) -> None:
    """Coordinated-omission correction proper: a blocking call inside async code freezes the
    event loop, so the generator itself cannot start the requests due meanwhile. They start
    late, in a burst, and still count from when they *should* have started."""
    pytester.makepyfile(
        """
        import itertools
        import time
        import pytest

        STALL_AT = 60
        counter = itertools.count(1)

        async def call_service():
            if next(counter) == STALL_AT:
                time.sleep(0.2)  # blocks the loop: nothing else starts for 200 ms

        @pytest.mark.slo(p50_ms=1000, rate_rps=200, arrivals="constant", warmup=20)
        def test_open(latency):
            result = latency(call_service)
            load = result.samples.load
            slow = int((result.samples_ns > 50_000_000).sum())
            assert load.late >= 30, load  # ~40 requests were due during the stall
            assert slow >= 20, slow  # from intended start; from actual start only 1 is slow
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_open_loop_stall_of_one_request_that_blocks_nobody_slows_only_that_request(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import itertools
        import pytest

        STALL_AT = 60
        counter = itertools.count(1)

        async def call_service():
            if next(counter) == STALL_AT:
                await asyncio.sleep(0.2)  # other requests proceed concurrently

        @pytest.mark.slo(p50_ms=1000, rate_rps=200, arrivals="constant", warmup=20)
        def test_open(latency):
            result = latency(call_service)
            slow = int((result.samples_ns > 50_000_000).sum())
            assert 1 <= slow <= 2, slow
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
