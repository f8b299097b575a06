"""``latency.worst_case`` through the plugin: the search's worst inputs are measured under the
marker's SLO, reported by name with their input, and a miss fails the test with the input."""

from __future__ import annotations

import json

import pytest

RUN = """
import itertools, time
import pytest
from hypothesis import strategies as st

def spin(ns):
    end = time.perf_counter_ns() + ns
    while time.perf_counter_ns() < end:
        pass

def planted(text):  # 0.5 us * (longest run of one character) ** 2, at most 3 ms
    run = max((len(list(g)) for _, g in itertools.groupby(text)), default=0)
    spin(min(3_000_000, 500 * run * run))

def flat(text):
    spin(20_000)

@pytest.mark.slo(p99_ms=1, max_time_s=3)
def test_planted(latency):
    latency.worst_case(planted, st.text(max_size=2000), examples=300, keep=2, seed=1)

@pytest.mark.slo(p99_ms=20, max_time_s=3)  # 20 us calls: 20 ms leaves room for a busy host
def test_flat(latency):
    found = latency.worst_case(flat, st.text(max_size=2000), examples=100, keep=2, seed=1)
    assert len(found.results) == len(found.inputs) == 2
    assert all(r.verdict.passed for r in found.results)
    assert found.search.shrunk is None
    assert latency.searches == [found]

@pytest.mark.slo(p99_ms=100, max_time_s=2)
def test_hangs(latency):
    def hangs_on_long_text(text):
        if len(text) >= 3:
            time.sleep(3600)
    latency.worst_case(hangs_on_long_text, st.text(), seed=0)

@pytest.mark.slo(min_rps=10)
def test_no_latency_target(latency):
    latency.worst_case(flat, st.text())

@pytest.mark.slo(p99_ms=1)
def test_not_a_strategy(latency):
    latency.worst_case(flat, ["a", "b"])

@pytest.mark.slo(p99_ms=1)
def test_async(latency):
    async def fn(text):
        return text
    latency.worst_case(fn, st.text())
"""


def test_worst_inputs_are_measured_reported_and_enforced(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_demo=RUN)
    out = pytester.path / "out.json"
    result = pytester.runpytest("-p", "no:xdist", "-p", "no:randomly", f"--latency-json={out}")
    result.assert_outcomes(passed=1, failed=5)
    text = result.stdout.str()
    assert "FAIL: p99 is over 1 ms with 95% confidence" in text
    assert "smallest input that misses (shrunk): '0000000000" in text
    assert "worst-case search:" in text
    assert "worst_case needs a latency target" in text
    assert "stopped at its time limit (2 s)" in text
    assert "did not return" in text
    assert "needs a Hypothesis strategy second" in text
    assert "pass a sync wrapper" in text
    doc = json.loads(out.read_text())
    names = [r["name"] for r in doc["results"]]
    planted = [r for r in doc["results"] if r["name"].startswith("planted worst case")]
    flat = [r for r in doc["results"] if r["name"].startswith("flat worst case")]
    assert len(flat) == 2, names
    assert all(r["decision"] == "PASS" for r in flat)
    assert planted, names
    assert planted[0]["name"].startswith("planted worst case 1: '0000")
    assert planted[0]["decision"] == "FAIL"
    assert planted[0]["percentiles_ms"]["p50"] > 1.0
