"""pytest-benchmark's JSON format: every statistic as pytest-benchmark's own ``Stats`` has it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_latency.report.benchmark_json import benchmark_stats, build_benchmark_json

stats_module = pytest.importorskip(
    "pytest_benchmark.stats", reason="needs pytest-benchmark: pip install 'pytest-latency[test]'"
)

# Round times in seconds, as whole nanoseconds (what a latency result holds).
ROUNDS = st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=60).map(
    lambda ns: [n / 1e9 for n in ns]
)


@given(ROUNDS)
def test_statistics_match_pytest_benchmark_stats(data: list[float]) -> None:
    theirs = stats_module.Stats()
    for value in data:
        theirs.update(value)
    assert benchmark_stats(data) == theirs.as_dict()  # the same methods: exactly equal


def test_a_result_without_successful_calls_is_left_out() -> None:
    doc = build_benchmark_json([{"nodeid": "t.py::test_a", "name": "f", "samples_ns": []}])
    assert doc["benchmarks"] == []
    with pytest.raises(ValueError, match="at least one round"):
        benchmark_stats([])
