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


def _their_stats(data: list[float]) -> dict[str, float]:
    theirs = stats_module.Stats()
    for value in data:
        theirs.update(value)
    return dict(theirs.as_dict())


# Older pytest-benchmark releases (5.0.1 among them, the newest that pytest 8.0 can have)
# returned the first datum *above* the upper fence as hd15iqr; newer ones (5.3.1) and we
# return the highest datum within it. Told apart by what it does, not by a version number.
OLD_HD15IQR = _their_stats([1e-09, 1e-09, 1e-09, 1e-09, 2e-09])["hd15iqr"] == 2e-09


@given(ROUNDS)
def test_statistics_match_pytest_benchmark_stats(data: list[float]) -> None:
    ours, theirs = benchmark_stats(data), _their_stats(data)
    if OLD_HD15IQR:
        del ours["hd15iqr"], theirs["hd15iqr"]
    assert ours == theirs  # the same methods: exactly equal


def test_a_result_without_successful_calls_is_left_out() -> None:
    doc = build_benchmark_json([{"nodeid": "t.py::test_a", "name": "f", "samples_ns": []}])
    assert doc["benchmarks"] == []
    with pytest.raises(ValueError, match="at least one round"):
        benchmark_stats([])
