"""``latency.judge``: the marker's SLO decided on samples measured elsewhere, reported and
enforced like any measurement of the test."""

from __future__ import annotations

import json

import pytest

RUN = """
import pytest
from pytest_latency import LatencyMissed

@pytest.mark.slo(p99_ms=10)
def test_fast_elsewhere(latency):
    result = latency.judge([2.0] * 600, name="browser")
    assert result.verdict.decision.value == "PASS"

@pytest.mark.slo(p99_ms=10)
def test_slow_elsewhere(latency):
    latency.judge([2.0] * 580 + [40.0] * 20, name="device")

@pytest.mark.xfail(strict=True, raises=LatencyMissed, reason="a known slow device")
@pytest.mark.slo(p99_ms=10)
def test_known_slow(latency):
    latency.judge([40.0] * 600, name="old phone")

@pytest.mark.slo(p99_ms=10)
def test_failed_requests_are_not_a_latency_miss(latency):
    latency.judge([2.0] * 600, name="flaky", errors=5)

@pytest.mark.slo(p99_ms=10)
def test_bad_samples(latency):
    latency.judge([2.0, float("nan")], name="broken log")
"""


def test_judged_samples_pass_fail_and_report_like_measurements(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_demo=RUN)
    out = pytester.path / "out.json"
    result = pytester.runpytest("-p", "no:xdist", f"--latency-json={out}")
    result.assert_outcomes(passed=1, failed=3, xfailed=1)
    text = result.stdout.str()
    assert "FAIL: p99 is over 10 ms with 95% confidence" in text
    assert "measured elsewhere: 600 request(s) handed in" in text
    assert "latencies_ms[1] = nan is not a latency" in text
    doc = json.loads(out.read_text())
    by_name = {r["name"]: r for r in doc["results"]}
    assert by_name["browser"]["decision"] == "PASS"
    assert by_name["browser"]["load"]["mode"] == "external"
    assert by_name["device"]["decision"] == "FAIL"
    assert by_name["flaky"]["errors"] == 5
    assert len(by_name["device"]["samples_ns"]) == 600
