"""engine='locust': open loops issued by real Locust worker processes on loopback, decided on
their raw samples by the plugin. Each test is a few seconds; every one checks that no Locust
process outlives it."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Found, never imported: importing locust runs gevent's monkey.patch_all() in this process,
# which turns every later test's threads into greenlets (one CI run: Triton's dynamic-batching
# tests failed and an asyncio gRPC test hung after these tests had run).
if importlib.util.find_spec("locust") is None:
    pytest.skip("needs Locust: pip install 'pytest-latency[locust]'", allow_module_level=True)

from pytest_latency.core.cluster import LOCUSTFILE, free_port


def _locust_children() -> list[str]:
    """Processes under this one whose command line is Locust's (master or worker)."""
    mine = str(os.getpid())
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if fields[1] == mine and "locust" in cmdline and fields[0] != "Z":
            found.append(cmdline)
    return found


@pytest.fixture(autouse=True)
def no_locust_left() -> Iterator[None]:
    yield
    left = _locust_children()
    deadline = time.monotonic() + 5
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = _locust_children()
    assert not left, f"Locust processes left running: {left}"


HEADER = """
import pytest
from tests.plugin.loopback_http import serve, url
"""


def test_pooled_samples_from_two_workers_reach_one_verdict(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HEADER
        + """
@pytest.mark.slo(p99_ms=100, rate_rps=200, engine="locust", workers=2, warmup=20,
                 max_time_s=10)
def test_pooled(latency):
    with serve() as server:
        result = latency.remote("tests.plugin.loopback_http:get_with_pid", url(server))
    assert len(server.pids) == 2, server.pids  # both workers issued requests
    load = result.samples.load
    assert load.mode == "open" and load.concurrency == 2 and load.offered_rps == 200
    assert result.n >= 299 and load.issued >= result.n
    assert result.verdict.passed, result.verdict
"""
    )
    pytester.runpytest("-p", "no:randomly", "--latency-json=out.json").assert_outcomes(passed=1)
    # The same report as any measurement: raw samples, the engine in the spec.
    (result,) = json.loads((pytester.path / "out.json").read_text())["results"]
    assert result["spec"]["engine"] == "locust"
    assert result["spec"]["workers"] == 2
    assert len(result["samples_ns"]) == result["n"] >= 299
    assert result["load"]["concurrency"] == 2


def test_a_server_that_stalls_for_two_seconds_fails_under_locust_and_in_process(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        HEADER
        + """
from tests.plugin.loopback_http import keepalive_get

@pytest.mark.slo(p99_ms=100, rate_rps=200, engine="locust", workers=2, warmup=0,
                 min_samples=600, max_time_s=8)
def test_locust(latency):
    with serve(stall_from_s=0.5, stall_s=2.0) as server:
        latency.http("GET", url(server))

@pytest.mark.slo(p99_ms=100, rate_rps=200, warmup=0, min_samples=600, max_time_s=8)
def test_in_process(latency):
    with serve(stall_from_s=0.5, stall_s=2.0) as server:
        latency(keepalive_get, url(server))
"""
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*p99*FAIL*"])


def test_workers_started_as_separate_locust_processes_join_a_master_the_plugin_opens(
    pytester: pytest.Pytester,
) -> None:
    port = free_port()
    pytester.makepyfile(
        HEADER
        + """
@pytest.mark.slo(p99_ms=100, rate_rps=200, engine="locust", workers=2, warmup=20,
                 max_time_s=10)
def test_remote(latency):
    with serve() as server:
        result = latency.remote("tests.plugin.loopback_http:get_with_pid", url(server))
    assert len(server.pids) == 2, server.pids
    assert result.samples.load.concurrency == 2
"""
    )
    # As a user on another machine would: plain `locust --worker` against the master's port
    # (started first: they connect once the master binds).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                LOCUSTFILE,
                "--worker",
                "--master-host",
                "127.0.0.1",
                "--master-port",
                str(port),
                "--loglevel",
                "WARNING",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        result = pytester.runpytest(
            "-p", "no:randomly", f"--latency-locust-master=127.0.0.1:{port}"
        )
        result.assert_outcomes(passed=1)
        # The master's quit tells the workers to quit too.
        for worker in workers:
            assert worker.wait(15) is not None
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def test_missing_remote_workers_fail_after_the_timeout_naming_the_command(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        HEADER
        + """
@pytest.mark.slo(p99_ms=100, rate_rps=200, engine="locust", workers=2)
def test_remote(latency):
    latency.http("GET", "http://127.0.0.1:9/")
"""
    )
    result = pytester.runpytest(
        f"--latency-locust-master=127.0.0.1:{free_port()}", "--latency-locust-timeout=1"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*0 of 2 Locust workers connected*", "*locust --worker*"])


def test_a_worker_that_dies_mid_run_fails_the_test_and_nothing_is_left(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        HEADER
        + """
@pytest.mark.slo(p99_ms=100, rate_rps=100, engine="locust", workers=2, warmup=0,
                 min_samples=2000, max_time_s=30)
def test_dies(latency):
    with serve() as server:
        latency.http("GET", url(server), payloads="tests.plugin.loopback_http:die_at_100")
"""
    )
    started = time.monotonic()
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*Locust worker*"])
    assert time.monotonic() - started < 20  # noticed within seconds, not at max_time_s


def test_an_async_callable_fails_with_what_workers_can_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
import pytest

@pytest.mark.slo(p99_ms=100, rate_rps=50, engine="locust", warmup=0, max_time_s=5)
def test_async(latency):
    latency.remote("tests.plugin.loopback_http:async_call")
"""
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*returned an awaitable: Locust workers run sync callables*"])


def test_a_comparison_under_a_locust_marker_is_refused_not_run_in_process(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
import pytest

calls = []

@pytest.mark.slo(p99_ms=100, rate_rps=50, engine="locust", workers=2)
def test_speedup(latency):
    latency.speedup(lambda: calls.append(1), lambda: calls.append(2))

def test_nothing_ran():
    assert calls == []
"""
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*a comparison cannot use: mark the comparison test without*"])


def test_in_process_and_locust_agree_at_a_rate_both_sustain(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HEADER
        + """
import numpy as np
from tests.plugin.loopback_http import keepalive_get

@pytest.mark.slo(p99_ms=200, rate_rps=200, warmup=40, max_time_s=10)
def test_agree(latency):
    p50 = {"inprocess": [], "locust": []}
    p99 = {"inprocess": [], "locust": []}
    with serve() as server:
        for engine in ("inprocess", "locust", "locust", "inprocess"):  # A B B A
            if engine == "locust":
                result = latency.http("GET", url(server), slo={"engine": "locust",
                                                               "workers": 1})
            else:
                result = latency(keepalive_get, url(server))
            ms = result.samples.latencies_ns / 1e6
            p50[engine].append(np.percentile(ms, 50))
            p99[engine].append(np.percentile(ms, 99))
    a, b = np.median(p50["inprocess"]), np.median(p50["locust"])
    print("p50", p50, "p99", p99)
    # Both clients add a few hundred microseconds over loopback: within noise, not equal.
    assert abs(a - b) < 1.0 + 0.5 * max(a, b), (p50, p99)
    a99, b99 = np.median(p99["inprocess"]), np.median(p99["locust"])
    assert abs(a99 - b99) < 5.0 + 1.0 * max(a99, b99), (p50, p99)
"""
    )
    pytester.runpytest("-p", "no:randomly", "-s").assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("latency.http('GET', 'ftp://x/')", "url='ftp://x/' is not valid*http://*"),
        ("latency.http('FETCH', 'http://127.0.0.1:9/')", "method='FETCH' is not valid*GET*"),
        ("latency.remote('no_colon')", "target='no_colon' is not valid*package.module:function*"),
        ("latency(sorted, [1])", "*engine='locust' runs its requests in Locust worker*"),
    ],
)
def test_bad_requests_fail_naming_the_value_and_what_is_valid(
    pytester: pytest.Pytester, body: str, expected: str
) -> None:
    pytester.makepyfile(
        f"""
import pytest

@pytest.mark.slo(p99_ms=10, rate_rps=100, engine="locust")
def test_bad(latency):
    {body}
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*{expected}"])


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ("engine='bogus', rate_rps=10", "*engine='bogus' is not valid*'inprocess', 'locust'*"),
        ("engine='locust', workers=0, rate_rps=10", "*workers=0 is not valid*positive integer*"),
        ("engine='locust'", "*engine='locust' needs rate_rps=*"),
        ("workers=2, rate_rps=10", "*workers=2 needs engine='locust'*"),
    ],
)
def test_bad_engine_keywords_are_refused_at_collection(
    pytester: pytest.Pytester, marker: str, expected: str
) -> None:
    pytester.makepyfile(
        f"""
import pytest

@pytest.mark.slo(p99_ms=10, {marker})
def test_bad(latency):
    pass
"""
    )
    result = pytester.runpytest()
    result.stdout.fnmatch_lines([expected])
    assert result.ret != 0


def test_without_locust_the_test_skips_with_the_install_command(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pytest_latency.plugin.locust_front as locust_front

    monkeypatch.setattr(locust_front, "locust_installed", lambda: False)
    pytester.makepyfile(
        """
import pytest

@pytest.mark.slo(p99_ms=10, rate_rps=100, engine="locust", workers=2)
def test_needs_locust(latency):
    latency.http("GET", "http://127.0.0.1:9/")
"""
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs Locust*pip install 'pytest-latency?locust?'*"])


def test_this_test_process_never_imported_locust_or_gevent() -> None:
    """Everything above drove Locust; none of it may have loaded gevent here."""
    assert not [m for m in ("locust", "gevent", "gevent.monkey") if m in sys.modules]


def test_the_pytest_side_of_the_engine_never_imports_locust_or_gevent() -> None:
    code = (
        "import sys, pytest_latency.plugin.fixture, pytest_latency.core.distributed, "
        "pytest_latency.locust_engine; "
        "bad = [m for m in ('locust', 'gevent') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def test_a_bad_master_address_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest("--latency-locust-master=nohost")
    result.stderr.fnmatch_lines(["*'nohost' is not a valid --latency-locust-master*HOST:PORT*"])
    assert result.ret != 0
