"""How calls are issued: async callables, closed loops, and garbage collection inside timed
blocks. Open loops have their own module (`test_open_loop.py`)."""

from __future__ import annotations

import pytest


def test_async_callable_is_measured_on_the_fixtures_loop(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        loops = []

        async def handler():
            loops.append(asyncio.get_running_loop())
            await asyncio.sleep(0)

        @pytest.mark.slo(p50_ms=50, warmup=5)
        def test_async(latency):
            first = latency(handler)
            second = latency(handler, name="again")
            assert first.n > 0 and second.n > 0
            assert len(loops) > 2 * 100
            # One loop for every call of both measurements: the fixture's, still open.
            assert len(set(map(id, loops))) == 1
            assert not loops[0].is_closed()
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_async_callable_under_concurrency_runs_concurrent_tasks(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        in_flight = 0
        peak = 0

        async def handler():
            global in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.0005)
            in_flight -= 1

        @pytest.mark.slo(p50_ms=50, concurrency=4, warmup=8, min_samples=40)
        def test_async(latency):
            result = latency(handler)
            assert result.n >= 40
            assert result.samples.load.mode == "closed"
            assert result.samples.load.concurrency == 4
            assert peak == 4
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_closed_loop_records_its_concurrency_and_keeps_worker_threads(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import itertools
        import threading
        import time
        import pytest

        WARMUP = 40
        local = threading.local()
        counter = itertools.count()
        lock = threading.Lock()
        first_call_of_thread = {}  # thread -> index of the call that set its thread-local

        def client():
            with lock:
                index = next(counter)
            if threading.current_thread() is not threading.main_thread():
                if not hasattr(local, "session"):  # e.g. a connection opened once per thread
                    local.session = object()
                    with lock:
                        first_call_of_thread[threading.current_thread()] = index
            time.sleep(0.0005)  # releases the GIL: all four workers take part in the warm-up

        @pytest.mark.slo(p50_ms=50, concurrency=4, warmup=WARMUP, min_samples=200)
        def test_closed(latency):
            result = latency(client)
            assert result.samples.load.mode == "closed"
            assert result.samples.load.concurrency == 4
            assert result.n >= 200
            # Index 0 is the cold start (main thread), 1..WARMUP the warm-up: every worker
            # thread set its thread-local during warm-up, and no new thread appeared later.
            assert len(first_call_of_thread) == 4
            assert max(first_call_of_thread.values()) <= WARMUP
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_gc_is_off_inside_timed_blocks_by_default_and_restored_after(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import gc
        import pytest

        seen = []

        def probe():
            seen.append(gc.isenabled())

        @pytest.mark.slo(p50_ms=50, warmup=5)
        def test_gc_off(latency):
            assert gc.isenabled()
            result = latency(probe)
            assert seen[0] is True  # the cold start runs outside the timed blocks
            timed = seen[-result.n:]  # the timed calls are the last ones, none raised
            assert len(timed) >= 100 and not any(timed)
            assert gc.isenabled()
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_gc_disabled_by_the_test_stays_disabled_after_measuring(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import gc
        import pytest

        @pytest.mark.slo(p50_ms=50, warmup=5)
        def test_gc_kept_off(latency):
            gc.disable()
            try:
                latency(sorted, [3, 2, 1])
                assert not gc.isenabled(), "latency() re-enabled the test's disabled gc"
            finally:
                gc.enable()
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


@pytest.mark.parametrize("how", ["marker", "option"])
def test_gc_on_leaves_collection_enabled_in_timed_calls(
    pytester: pytest.Pytester, how: str
) -> None:
    marker = "p50_ms=50, warmup=5" + (", gc='on'" if how == "marker" else "")
    pytester.makepyfile(
        f"""
        import gc
        import pytest

        seen = []

        def probe():
            seen.append(gc.isenabled())

        @pytest.mark.slo({marker})
        def test_gc_on(latency):
            result = latency(probe)
            assert result.spec.gc == "on"
            assert len(seen) > 100 and all(seen)
        """
    )
    args = ["--latency-gc=on"] if how == "option" else []
    pytester.runpytest(*args).assert_outcomes(passed=1)
