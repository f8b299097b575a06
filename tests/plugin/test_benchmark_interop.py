"""pytest-benchmark interop: an ``slo`` marker on a ``benchmark`` test is decided on
pytest-benchmark's own timings, and ``--latency-benchmark-json`` writes a file pytest-benchmark's
tools load."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip(
    "pytest_benchmark", reason="needs pytest-benchmark: pip install 'pytest-latency[test]'"
)

# One benchmark of single calls of about 2 ms, rounds chosen by pytest-benchmark itself.
SLEEPY = """
import time
import pytest

@pytest.mark.slo(p99_ms={target})
def test_sleepy(benchmark):
    benchmark(time.sleep, 0.002)
"""


def test_slo_on_a_benchmark_test_fails_when_its_rounds_miss_the_target(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_b=SLEEPY.format(target=1))
    result = pytester.runpytest("--benchmark-max-time=0.1", "--latency-json=latency.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*FAIL: p99 is over 1 ms with 95% confidence (lower bound *",
            "p99 *<= 1.00 ms*FAIL",
            "samples: * pytest-benchmark rounds of one call each",
            "*= latency: 1 measurement(s) =*",
            "test_b.py::test_sleepy (pytest-benchmark) *p99<=1ms*FAIL",
        ]
    )
    (record,) = json.loads((pytester.path / "latency.json").read_text())["results"]
    assert record["source"] == "pytest-benchmark"
    assert record["benchmark_iterations"] == 1
    assert record["decision"] == "FAIL"
    assert len(record["samples_ns"]) == record["n"] > 0
    assert min(record["samples_ns"]) >= 2_000_000  # per-call seconds, converted to ns


def test_slo_on_a_benchmark_test_passes_when_its_rounds_meet_the_target(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_b="""
        import time
        import pytest

        @pytest.mark.slo(p99_ms=50)
        def test_sleepy(benchmark):
            benchmark.pedantic(time.sleep, args=(0.002,), rounds=400)
        """
    )
    result = pytester.runpytest("--junit-xml=junit.xml")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["test_b.py::test_sleepy (pytest-benchmark)  400 *PASS"])
    assert (
        'name="latency[pytest-benchmark].decision" value="PASS"'
        in (pytester.path / "junit.xml").read_text()
    )


def test_too_few_rounds_to_decide_is_inconclusive_with_how_to_get_more(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_b=SLEEPY.format(target=50))
    result = pytester.runpytest("--benchmark-max-time=0.05")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "INCONCLUSIVE: p99 * vs 50 ms: bounds * straddle the target*",
            "more rounds would decide it: raise --benchmark-max-time or "
            "@pytest.mark.benchmark(min_rounds=N)*",
        ]
    )
    assert (
        pytester.runpytest("--benchmark-max-time=0.05", "--latency-inconclusive=pass").ret
        == pytest.ExitCode.OK
    )


def test_rounds_of_several_calls_are_reported_as_per_round_means(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_b="""
        import time
        import pytest

        @pytest.mark.slo(p50_ms=0.5)
        def test_batched(benchmark):
            benchmark.pedantic(time.sleep, args=(0.001,), rounds=20, iterations=3)
        """
    )
    result = pytester.runpytest("--latency-json=latency.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "samples: 20 pytest-benchmark rounds of 3 calls each (calibrated): each sample is a "
            "round's mean per call, so these percentiles are of 3-call means and understate "
            "the per-call tail*",
            "test_b.py::test_batched (pytest-benchmark, means of 3 calls) *FAIL",
        ]
    )
    (record,) = json.loads((pytester.path / "latency.json").read_text())["results"]
    assert record["per_round_means"] is True
    assert record["benchmark_iterations"] == 3
    # pytest-benchmark divides each round by its iterations: a sample is one call's share.
    assert 1_000_000 <= min(record["samples_ns"]) < 3_000_000


@pytest.mark.parametrize(
    ("keywords", "why"),
    [
        ("rate_rps=100", "*closed loop of one*use the `latency` fixture for an open loop"),
        ("concurrency=4", "*from one thread; use `latency` for concurrent workers"),
        ("max_time_s=5", "*--benchmark-max-time or @pytest.mark.benchmark(max_time=S)"),
        ("budget={'parse': 1}", "stage spans are recorded only inside `latency`'s timed blocks"),
    ],
)
def test_marker_keywords_a_benchmark_cannot_honour_are_collection_errors(
    pytester: pytest.Pytester, keywords: str, why: str
) -> None:
    pytester.makepyfile(
        test_b=f"""
        import pytest

        @pytest.mark.slo(p99_ms=10, {keywords})
        def test_b(benchmark):
            benchmark(sorted, [2, 1])
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            f"test_b.py::test_b: invalid @pytest.mark.slo: {keywords} cannot apply to a test "
            f"that uses pytest-benchmark's `benchmark` fixture: {why}"
        ]
    )


def test_benchmark_disable_keeps_the_test_outcome_and_warns_the_slo_was_not_checked(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_b=SLEEPY.format(target=1))
    result = pytester.runpytest("--benchmark-disable")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*PytestLatencyWarning: test_b.py::test_sleepy is marked @pytest.mark.slo but "
            "pytest-benchmark is disabled (--benchmark-disable, or pytest-xdist), so nothing "
            "was timed and its SLO was not checked*"
        ]
    )
    assert "= latency:" not in result.stdout.str()


def test_a_benchmark_test_that_never_calls_benchmark_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_b="""
        import pytest

        @pytest.mark.slo(p99_ms=10)
        def test_b(benchmark):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*marked @pytest.mark.slo but never called benchmark(fn, ...)*"])


def test_a_failing_benchmark_body_keeps_its_own_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_b="""
        import pytest

        @pytest.mark.slo(p99_ms=10)
        def test_b(benchmark):
            assert benchmark(sorted, [2, 1]) == [2, 1]
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E       assert [1, 2] == [2, 1]"])
    assert "= latency:" not in result.stdout.str()


def test_benchmark_json_export_loads_in_pytest_benchmark_compare(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_e="""
        import time
        import pytest

        @pytest.mark.slo(p50_ms=50, warmup=5)
        def test_sorted(latency):
            latency(sorted, [3, 2, 1])

        @pytest.mark.parametrize("delay", [0.001])
        @pytest.mark.slo(p50_ms=50, warmup=0, min_samples=50)
        def test_two(latency, delay):
            latency(time.sleep, delay, name="sleep")
            latency(sorted, [1], name="sort")

        @pytest.mark.slo(p99_ms=50)
        def test_bench(benchmark):
            benchmark.pedantic(time.sleep, args=(0.001,), rounds=30)
        """
    )
    pytester.mkdir("out")
    result = pytester.runpytest(
        "--latency-benchmark-json=out/bench.json", "--latency-inconclusive=pass"
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["latency results in pytest-benchmark format (4 benchmark(s)) written to out/bench.json"]
    )
    path = pytester.path / "out" / "bench.json"
    doc = json.loads(path.read_text())
    assert set(doc) == {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    by_name = {b["fullname"]: b for b in doc["benchmarks"]}
    assert sorted(by_name) == [
        "test_e.py::test_bench",
        "test_e.py::test_sorted",
        "test_e.py::test_two[0.001]:sleep",
        "test_e.py::test_two[0.001]:sort",
    ]
    sleep = by_name["test_e.py::test_two[0.001]:sleep"]
    assert sleep["name"] == "test_two[0.001]:sleep"
    assert sleep["param"] == "0.001"
    assert sleep["stats"]["iterations"] == 1
    assert len(sleep["stats"]["data"]) == 50
    assert 0.001 <= sleep["stats"]["min"] < 0.05  # seconds, as pytest-benchmark stores them
    assert sleep["extra_info"]["latency"]["decision"] == "PASS"

    # pytest-benchmark's own loader and its compare command accept the file.
    from pytest_benchmark.logger import Logger
    from pytest_benchmark.storage.file import FileStorage

    storage = FileStorage(pytester.path / "out", logger=Logger(Logger.QUIET))
    loaded = list(storage.load_benchmarks(str(path)))
    assert sorted(b["fullname"] for b in loaded) == sorted(by_name)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", "compare", str(path), "--columns=min,max"],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Failed to load" not in proc.stdout + proc.stderr
    assert "benchmark: 4 tests" in proc.stdout
    assert "test_two[0.001]:sleep" in proc.stdout
    assert "test_bench" in proc.stdout
