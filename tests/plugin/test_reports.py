"""Where results go: the terminal summary (by verbosity), the JSON report, JUnit XML, and
results gathered from pytest-xdist workers."""

from __future__ import annotations

import importlib.util
import json
import re
import xml.etree.ElementTree as ET

import pytest

TWO_TESTS = """
import time
import pytest

@pytest.mark.slo(p50_ms=50, warmup=5)
def test_fast(latency):
    latency(sorted, [3, 2, 1])

@pytest.mark.slo(p50_ms=0.5, warmup=5, min_samples=20)
def test_slow(latency):
    latency(time.sleep, 0.002)
"""


def latency_section(result: pytest.RunResult) -> list[str]:
    """The lines of the ``latency:`` terminal section, up to the next ``===`` separator."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "= latency: " in line)
    end = next(
        (i for i in range(start + 1, len(lines)) if re.match(r"=|\d+ (passed|failed)", lines[i])),
        len(lines),
    )
    return lines[start:end]


def test_terminal_summary_has_one_row_per_measurement_and_a_legend(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_two=TWO_TESTS)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*= latency: 2 measurement(s) =*",
            "test * n*p50 ms*p99 ms*p99 bounds*binding*margin*verdict",
            "test_two.py::test_fast *p50<=50ms*PASS",
            "test_two.py::test_slow *p50<=0.5ms*FAIL",
            "legend: p50/p99 = nearest-rank percentiles *one-sided 95% confidence bounds",
            "*FAIL: lower bound > target, INCONCLUSIVE: neither within the sampling budget.",
        ]
    )
    assert len([ln for ln in latency_section(result) if ln.startswith("test_two.py::")]) == 2


def test_quiet_summary_lists_only_measurements_that_did_not_pass(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_two=TWO_TESTS)
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=1, failed=1)
    section = latency_section(result)
    assert section[0].strip("= ") == "latency: 2 measurement(s)"
    rows = [ln for ln in section if ln.startswith("test_two.py::")]
    assert len(rows) == 1, section
    assert rows[0].startswith("test_two.py::test_slow"), section
    assert not any(ln.startswith("legend:") for ln in section)


def test_quiet_summary_says_all_passed_when_every_slo_passed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slo(p50_ms=50, warmup=5)
        def test_fast(latency):
            latency(sorted, [3, 2, 1])
        """
    )
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=1)
    assert latency_section(result)[1:] == ["all latency SLOs passed"]


def test_very_quiet_run_prints_no_latency_section(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_two=TWO_TESTS)
    result = pytester.runpytest("-qq")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # -qq prints no outcome counts to parse
    result.stdout.fnmatch_lines(["FAILED test_two.py::test_slow - *"])
    result.stdout.no_fnmatch_line("*latency: 2 measurement(s)*")
    result.stdout.no_fnmatch_line("legend:*")


def test_verbose_summary_adds_a_row_per_target(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_targets="""
        import pytest

        @pytest.mark.slo(p50_ms=50, p99_ms=60, max_error_rate=0.1, warmup=5)
        def test_fast(latency):
            latency(sorted, [3, 2, 1])
        """
    )
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "test_targets.py::test_fast *PASS",
            "  p50 *p50<=50ms*PASS",
            "  p99 *p99<=60ms*PASS",
            "  error_rate *error_rate<=10.00%*PASS",
            "legend:*",
        ]
    )


def test_name_labels_each_measurement_in_the_summary(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_named="""
        import pytest

        @pytest.mark.slo(p50_ms=50, warmup=5)
        def test_two(latency):
            latency(sorted, [3, 2, 1], name="sort-small")
            latency(sorted, list(range(20)), name="sort-twenty")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= latency: 2 measurement(s) =*",
            "test *",
            "test_named.py::test_two (sort-small) *PASS",
            "test_named.py::test_two (sort-twenty) *PASS",
        ]
    )


def test_json_report_holds_settings_environment_and_every_result(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_two=TWO_TESTS)
    pytester.mkdir("out")
    result = pytester.runpytest("--latency-json=out/latency.json", "--latency-seed=7")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["latency JSON written to out/latency.json"])
    report = json.loads((pytester.path / "out" / "latency.json").read_text())

    assert report["schema"] == "pytest-latency/1"
    assert report["settings"]["seed"] == 7
    assert report["settings"]["inconclusive"] == "fail"
    env = report["environment"]
    assert env["cpu_model"]
    assert env["cpu_count"] >= 1
    assert env["python"].count(".") == 2
    assert "pytest" in env["packages"]
    assert "numpy" in env["packages"]

    by_test = {r["nodeid"]: r for r in report["results"]}
    assert set(by_test) == {"test_two.py::test_fast", "test_two.py::test_slow"}
    fast, slow = by_test["test_two.py::test_fast"], by_test["test_two.py::test_slow"]
    assert (fast["decision"], fast["outcome"]) == ("PASS", "passed")
    assert (slow["decision"], slow["outcome"]) == ("FAIL", "failed")
    assert fast["spec"]["p50_ms"] == 50
    assert fast["spec"]["warmup"] == 5
    assert fast["spec"]["confidence"] == 0.95  # resolved from the session default
    for r in (fast, slow):
        (target,) = r["targets"]
        assert target["metric"] == "p50"
        assert target["decision"] == r["decision"]
        assert {"target", "observed", "lower", "upper", "n", "margin", "unit"} <= set(target)
        assert target["lower"] is not None
        assert target["upper"] is not None
        assert r["percentiles_ms"]["p50"] <= r["percentiles_ms"]["p99"]
        assert len(r["samples_ns"]) == r["n"] > 0
        assert all(type(x) is int and x > 0 for x in r["samples_ns"])
        assert r["xdist_worker"] is None
    assert slow["summary"].startswith("FAIL: p50 is over 0.5 ms")


def test_junit_xml_carries_latency_properties(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_junit="""
        import pytest

        @pytest.mark.slo(p50_ms=50, warmup=5)
        def test_fast(latency):
            latency(sorted, [3, 2, 1])
            latency(sorted, [1], name="one")
        """
    )
    result = pytester.runpytest("--junit-xml=junit.xml")
    result.assert_outcomes(passed=1)
    case = ET.parse(pytester.path / "junit.xml").find(".//testcase[@name='test_fast']")
    assert case is not None
    props = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
    assert props["latency.decision"] == "PASS"
    assert int(props["latency.n"]) >= 100
    assert float(props["latency.p50_ms"]) <= float(props["latency.p99_ms"])
    assert props["latency.p50.verdict"] == "PASS"
    assert json.loads(props["latency.json"])["decision"] == "PASS"
    assert props["latency[one].decision"] == "PASS"


@pytest.mark.skipif(
    importlib.util.find_spec("xdist") is None,
    reason="needs pytest-xdist: pip install 'pytest-latency[test]'",
)
def test_results_from_xdist_workers_reach_the_summary_and_the_json(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_par="""
        import pytest

        @pytest.mark.slo(p50_ms=50, warmup=5)
        def test_one(latency):
            latency(sorted, [3, 2, 1])

        @pytest.mark.slo(p50_ms=50, warmup=5)
        def test_two(latency):
            latency(sorted, [1, 2, 3])
        """
    )
    result = pytester.runpytest_subprocess(
        "-n",
        "2",
        "-p",
        "xdist",
        "-p",
        "no:hypothesispytest",  # unused here; importing it costs each process a second
        "--latency-json=latency.json",
        "--latency-seed=99",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*seed=99*",
            "*= latency: 2 measurement(s) =*",
            "test_par.py::test_* *PASS",
            "test_par.py::test_* *PASS",
        ]
    )
    warning = "warning: 2 measurement(s) ran under pytest-xdist beside other tests*"
    assert len([ln for ln in result.stdout.lines if ln.startswith(warning[:40])]) == 1
    result.stdout.fnmatch_lines([warning])
    report = json.loads((pytester.path / "latency.json").read_text())
    assert sorted(r["nodeid"] for r in report["results"]) == [
        "test_par.py::test_one",
        "test_par.py::test_two",
    ]
    assert all(r["xdist_worker"] in ("gw0", "gw1") for r in report["results"])
    assert all(len(r["samples_ns"]) == r["n"] for r in report["results"])
