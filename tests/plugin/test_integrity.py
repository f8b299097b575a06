"""Verdict integrity: callables that hang or lie, and mistakes a new user makes, never give a
PASS and never hang the run."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HUNG_SERIAL = """
import pathlib, time
import pytest

@pytest.mark.slo(p99_ms=20, max_time_s=60, warmup=0)
def test_hangs(latency):
    def call():
        pathlib.Path("hanging").write_text("1")
        time.sleep(3600)
    latency(call)
"""

HUNG_THREADS = """
import pathlib, threading
import pytest

STUCK = threading.Event()  # never set: the worker stays blocked

@pytest.mark.slo(p99_ms=20, max_time_s={max_time_s}, warmup=0, concurrency=4)
def test_hangs(latency):
    def call():
        pathlib.Path("hanging").write_text("1")
        STUCK.wait()
    latency(call)
"""


def _spawn(pytester: pytest.Pytester, source: str) -> subprocess.Popen[bytes]:
    pytester.makepyfile(test_hang=source)
    return pytester.popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_hang.py"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        # A shell without job control starts background jobs with SIGINT ignored, and Python
        # keeps an ignored SIGINT: give the child the default, so Ctrl-C reaches it however
        # this run was started (`cmd &` in a script read SIG_IGN and failed the Ctrl-C tests).
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[0].decode()
        assert time.monotonic() < deadline, "the measurement never started"
        time.sleep(0.05)


@pytest.mark.parametrize("source", [HUNG_SERIAL, HUNG_THREADS.format(max_time_s=60)])
def test_ctrl_c_during_a_hung_measurement_ends_the_run_within_a_second(
    pytester: pytest.Pytester, source: str
) -> None:
    proc = _spawn(pytester, source)
    try:
        _wait_for(pytester.path / "hanging", proc)
        time.sleep(0.3)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=30)[0].decode()
        took = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "KeyboardInterrupt" in out
    assert took < 1.5, (took, out)


def test_a_worker_thread_stuck_forever_does_not_keep_pytest_alive(
    pytester: pytest.Pytester,
) -> None:
    proc = _spawn(pytester, HUNG_THREADS.format(max_time_s=1))
    try:
        out = proc.communicate(timeout=60)[0].decode()
    finally:
        proc.kill()
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, out
    assert "did not return" in out
    assert "1 failed" in out


def test_a_hung_call_fails_the_test_with_the_call_and_the_time_it_ran(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import itertools, time
        import pytest

        calls = itertools.count()

        def fetch():
            if next(calls) == 50:
                time.sleep(3600)

        @pytest.mark.slo(p99_ms=20, max_time_s=1, warmup=5)
        def test_hangs(latency):
            latency(fetch)
        """
    )
    t0 = time.monotonic()
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*FAIL: 1 call(s) of fetch did not return: the longest had run * s when the "
            "measurement gave up on it (max_time_s 1 s plus a grace of 1 s)*"
        ]
    )
    assert time.monotonic() - t0 < 1 + 1 + 3


@pytest.mark.parametrize(
    ("body", "returned"),
    [
        ("async def get():\n    return 1\nfn = lambda: get()", "returned a coroutine"),
        ("def gen():\n    yield 1\nfn = gen", "returned a generator"),
        (
            "import concurrent.futures\npool = concurrent.futures.ThreadPoolExecutor(1)\n"
            "fn = lambda: pool.submit(sum, [1])",
            "returned a concurrent.futures.Future",
        ),
        (
            "import asyncio\nclass Client:\n    def get(self):\n"
            "        return asyncio.sleep(0.01)\nfn = Client().get",
            "returned a coroutine",
        ),
    ],
)
def test_a_callable_that_returns_its_work_undone_fails_instead_of_timing_nothing(
    pytester: pytest.Pytester, body: str, returned: str
) -> None:
    pytester.makepyfile(
        body
        + """

import pytest

@pytest.mark.slo(p99_ms=1000)
def test_it(latency):
    latency(fn)
"""
    )
    result = pytester.runpytest("-W", "error::RuntimeWarning")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*{returned}*", "*Pass the async function itself*"])
    result.stdout.no_fnmatch_line("*PASS*")


def test_compare_awaits_async_callables_and_finds_the_real_speedup(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        async def slow():
            await asyncio.sleep(0.004)

        async def fast():
            await asyncio.sleep(0)

        @pytest.mark.slo(p99_ms=1000, warmup=5, max_time_s=30)
        def test_it(latency):
            c = latency.speedup(fast, slow, min_speedup=2, block=20)
            assert c.reference.n >= 100
            assert c.quantile_ms("reference") >= 4
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_deprecated_compare_keeps_its_order_and_names_its_replacement(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import time
        import pytest

        def slow():
            time.sleep(0.002)

        def fast():
            pass

        @pytest.mark.slo(p99_ms=1000, warmup=0, max_time_s=30)
        def test_it(latency):
            with pytest.deprecated_call(match=r"latency.speedup\\(candidate, reference"):
                c = latency.compare(slow, fast, min_speedup=2, block=20, names=("s", "f"))
            assert (c.reference_name, c.candidate_name) == ("s", "f")
            assert c.passed
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_compare_fails_a_candidate_that_raises_on_some_inputs(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import itertools, time
        import pytest

        calls = itertools.count()

        def slow():
            time.sleep(0.002)

        def fast_but_broken():
            if next(calls) % 10 == 0:  # its slow inputs raise instead of taking long
                raise ValueError("input too long")

        @pytest.mark.slo(p99_ms=1000, warmup=0, max_time_s=30)
        def test_it(latency):
            latency.speedup(fast_but_broken, slow, min_speedup=2, block=20)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*FAIL: fast_but_broken raised on 1 of * calls (error rate *, allowed 0.0%)*",
            "*ValueError: input too long*",
        ]
    )


def test_an_async_test_measuring_an_async_callable_gets_a_clear_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import asyncio
        import pytest

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        async def op():
            await asyncio.sleep(0)

        @pytest.mark.anyio
        @pytest.mark.slo(p99_ms=100)
        async def test_it(latency):
            latency(op)
        """
    )
    result = pytester.runpytest("-p", "anyio")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*op is async, and this test already runs an event loop*plain `def` test*"]
    )
    result.stdout.no_fnmatch_line("*another loop is running*")


def test_a_sync_callable_in_an_async_test_is_measured(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        @pytest.mark.anyio
        @pytest.mark.slo(p99_ms=100)
        async def test_it(latency):
            assert latency(sorted, [2, 1]).verdict.passed
        """
    )
    pytester.runpytest("-p", "anyio").assert_outcomes(passed=1)


def test_stage_spans_come_only_from_the_measured_calls_thread(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import threading, time
        import pytest
        from pytest_latency import stage

        def background(stop):
            while not stop.is_set():  # another thread of the process, say a server
                with stage("inference"):
                    time.sleep(0.0005)

        def handle():
            with stage("parse"):
                pass

        @pytest.mark.slo(p99_ms=50, budget={"parse": 5}, warmup=10)
        def test_it(latency):
            stop = threading.Event()
            thread = threading.Thread(target=background, args=(stop,))
            thread.start()
            try:
                result = latency(handle)
            finally:
                stop.set()
                thread.join()
            assert set(result.stages_ms) == {"parse"}
            assert result.stages_ms["parse"]["n"] == result.n
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


STRICT_XFAIL = """
import itertools, time
import pytest
from pytest_latency import LatencyMissed

calls = itertools.count()

@pytest.mark.xfail(strict=True, raises=LatencyMissed, reason="too slow")
@pytest.mark.slo(p99_ms=1, max_time_s=5, warmup=0)
def test_it(latency):
    latency(CALL)
"""


@pytest.mark.parametrize(
    ("call", "outcome"),
    [
        ("lambda: time.sleep(0.003)", "xfailed"),  # really too slow: the expected failure
        ("lambda: 1 / 0", "failed"),  # every call raises: a broken client, not "too slow"
        ("lambda: 1 / 0 if next(calls) % 50 == 49 else time.sleep(0.003)", "failed"),
        ("lambda: time.sleep(3600)", "failed"),  # a hang
        ("undefined_name", "failed"),  # a crash in the test itself
    ],
)
def test_a_strict_xfail_for_too_slow_expects_only_a_latency_fail_verdict(
    pytester: pytest.Pytester, call: str, outcome: str
) -> None:
    pytester.makepyfile(STRICT_XFAIL.replace("CALL", call))
    result = pytester.runpytest()
    result.assert_outcomes(**{outcome: 1})
