"""`judge`: the plugin's verdict on latencies measured elsewhere."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_latency import Decision, judge
from pytest_latency.core.evaluate import evaluate
from pytest_latency.core.spec import Spec, SpecError


def test_the_same_samples_get_the_same_verdict_as_a_measurement_would() -> None:
    rng = np.random.default_rng(3)
    ms = rng.lognormal(mean=1.0, sigma=0.4, size=2000)
    got = judge(ms, {"p50_ms": 3, "p99_ms": 10})
    assert got.samples.n == 2000
    assert got.samples.load.mode == "external"
    # The bounds are the plugin's own order statistics at one look.
    again = evaluate(got.samples, Spec(p50_ms=3, p99_ms=10).resolved({}), look=1, fixed=True)
    assert [(t.metric, t.lower, t.upper) for t in got.verdict.targets] == [
        (t.metric, t.lower, t.upper) for t in again.targets
    ]
    p99 = next(t for t in got.verdict.targets if t.metric == "p99")
    assert p99.observed == pytest.approx(
        float(np.quantile(ms, 0.99, method="inverted_cdf")), rel=1e-6
    )


def test_a_slow_tail_fails_and_a_fast_sample_passes() -> None:
    assert judge([2.0] * 400, {"p99_ms": 10}).verdict.decision is Decision.PASS
    assert judge([2.0] * 400 + [50.0] * 20, {"p99_ms": 10}).verdict.decision is Decision.FAIL


def test_unfinished_requests_can_only_push_towards_fail() -> None:
    fast = [1.0] * 600
    assert judge(fast, {"p99_ms": 10}).verdict.decision is Decision.PASS
    with_unfinished = judge(fast, {"p99_ms": 10}, unfinished_ms=[5.0] * 12)
    assert with_unfinished.verdict.decision is not Decision.PASS  # they may be arbitrarily slow
    assert with_unfinished.samples.censored == 12


def test_errors_count_against_max_error_rate() -> None:
    got = judge([1.0] * 600, {"p99_ms": 10}, errors=3)
    assert got.verdict.decision is Decision.FAIL
    assert "3 request(s) failed" in (got.samples.first_error or "")
    allowed = judge([1.0] * 600, {"p99_ms": 10, "max_error_rate": 0.05}, errors=3)
    assert allowed.verdict.decision is Decision.PASS


def test_min_rps_needs_the_wall_time() -> None:
    with pytest.raises(SpecError, match="min_rps needs wall_s"):
        judge([1.0] * 300, {"min_rps": 100})
    got = judge([1.0] * 300, {"min_rps": 100}, wall_s=1.5)
    assert got.samples.throughput_rps == pytest.approx(200.0)


@pytest.mark.parametrize(
    ("latencies", "kwargs", "message"),
    [
        ([1.0, math.nan], {}, r"latencies_ms\[1\] = nan is not a latency"),
        ([1.0, -2.0], {}, r"latencies_ms\[1\] = -2.0 is not a latency"),
        ([[1.0], [2.0]], {}, r"flat sequence of milliseconds"),
        (["fast"], {}, r"must be numbers of milliseconds"),
        ([], {}, r"no samples to judge"),
        ([1.0], {"errors": -1}, r"errors=-1 is not valid"),
        ([1.0], {"wall_s": math.inf}, r"wall_s=inf is not valid"),
        ([1.0], {"unfinished_ms": [math.inf]}, r"unfinished_ms\[0\] = inf is not a latency"),
    ],
)
def test_bad_input_is_refused_naming_the_value(
    latencies: object, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        judge(latencies, {"p99_ms": 10}, **kwargs)  # type: ignore[arg-type]


def test_a_cold_start_target_is_refused_without_the_first_calls_latency() -> None:
    with pytest.raises(SpecError, match="cold_start_ms cannot be judged"):
        judge([1.0] * 10, {"cold_start_ms": 5})


def test_a_cold_start_timed_apart_is_reported_and_decided_but_not_a_sample() -> None:
    fast = judge([1.0] * 400, {"p99_ms": 10, "cold_start_ms": 500}, cold_start_ms=420.5)
    assert fast.samples.cold_start_ns == 420_500_000
    assert fast.samples.n == 400
    assert fast.verdict.decision is Decision.PASS
    slow = judge([1.0] * 400, {"p99_ms": 10, "cold_start_ms": 500}, cold_start_ms=650.0)
    assert slow.verdict.decision is Decision.FAIL
    rows = {row.metric: row.decision for row in slow.verdict.targets}
    assert rows == {"p99": Decision.PASS, "cold_start": Decision.FAIL}
    with pytest.raises(SpecError, match="cold_start_ms"):
        judge([1.0] * 10, {"p99_ms": 10}, cold_start_ms=float("nan"))
