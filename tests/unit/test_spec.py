"""`Spec` validation: every bad value is refused with its name, the value and what is valid."""

from __future__ import annotations

import pytest

from pytest_latency.core.spec import Spec, SpecError


def test_targets_are_listed_in_quantile_order() -> None:
    spec = Spec.from_kwargs(p99_ms=10, p50_ms=4)
    assert spec.percentile_targets == ((0.5, 4.0), (0.99, 10.0))
    assert spec.describe() == "p50<=4ms p99<=10ms"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p99_ms": 10, "p98_ms": 3}, r"unknown keyword 'p98_ms'; valid: .*p99_ms"),
        ({"p99_ms": -1}, r"p99_ms=-1 is not valid; expected a positive number"),
        ({"p99_ms": 0}, r"p99_ms=0 is not valid"),
        ({"p99_ms": float("nan")}, r"p99_ms=nan is not valid"),
        ({"p99_ms": "10"}, r"p99_ms='10' is not valid"),
        (
            {"p99_ms": 10, "confidence": 1},
            r"confidence=1 is not valid; expected a number "
            r"strictly between 0 and 1",
        ),
        ({"p99_ms": 10, "confidence": 0}, r"confidence=0 is not valid"),
        ({"p99_ms": 10, "rate_rps": 100, "concurrency": 4}, r"rate_rps=100 with concurrency=4"),
        ({"p50_ms": 5, "p99_ms": 4}, r"percentiles out of order: p50_ms=5 > p99_ms=4"),
        ({"p99_ms": 5, "max_ms": 4}, r"p99_ms=5 > max_ms=4"),
        ({}, r"no target given; set at least one of p50_ms"),
        ({"p99_ms": 1, "warmup": "sometimes"}, r"warmup='sometimes' is not valid"),
        ({"p99_ms": 1, "warmup": -1}, r"warmup=-1 is not valid"),
        ({"p99_ms": 1, "arrivals": "poisson"}, r"arrivals='poisson' needs rate_rps"),
        ({"p99_ms": 1, "rate_rps": 5, "arrivals": "bursty"}, r"arrivals='bursty' is not valid"),
        ({"p99_ms": 1, "gc": "maybe"}, r"gc='maybe' is not valid; expected 'off' or 'on'"),
        (
            {"p99_ms": 1, "concurrency": 1.5},
            r"concurrency=1.5 is not valid; expected a "
            r"positive integer",
        ),
        ({"p99_ms": 1, "min_samples": 500, "max_samples": 100}, r"min_samples=500 exceeds"),
        ({"p99_ms": 1, "max_error_rate": 1.0}, r"max_error_rate=1.0 is not valid"),
    ],
)
def test_invalid_keywords_are_refused_with_name_value_and_valid_range(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        Spec.from_kwargs(**kwargs)


def test_an_error_budget_alone_is_a_target() -> None:
    assert Spec.from_kwargs(max_error_rate=0.01).max_error_rate == 0.01


def test_resolution_fills_plan_defaults_but_keeps_what_the_marker_says() -> None:
    spec = Spec(p99_ms=10, warmup=5).resolved({"confidence": 0.9, "max_time_s": 3})
    assert (spec.confidence, spec.warmup, spec.max_time_s, spec.gc) == (0.9, 5, 3, "off")
    assert spec.concurrency == 1
    assert spec.arrivals is None
    open_loop = Spec(p99_ms=10, rate_rps=50).resolved({})
    assert open_loop.arrivals == "poisson"
    assert open_loop.concurrency is None


def test_overrides_replace_only_the_keywords_they_name() -> None:
    base = Spec(p99_ms=10, p50_ms=4, warmup=7)
    merged = base.merged({"p99_ms": 8})
    assert (merged.p99_ms, merged.p50_ms, merged.warmup) == (8, 4, 7)
    assert base.merged(Spec(p99_ms=9)).p50_ms == 4
    with pytest.raises(SpecError, match="unknown keyword"):
        base.merged({"p98_ms": 3})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, r"^seed=-1 is not valid; expected an integer >= 0$"),
        ({"warmup": 10**12}, r"^warmup=1000000000000 is not valid; expected a count from 0 to "),
        ({"rate_rps": 1e6}, r"^rate_rps=1000000.0 is not valid; .*distributed load generator"),
        ({"concurrency": 10_000}, r"^concurrency=10000 is not valid; expected .* up to 1,024"),
        ({"min_samples": 10**8}, r"^min_samples=100000000 is not valid; .* up to 10,000,000"),
        ({"max_samples": 10**8}, r"^max_samples=100000000 is not valid; .* up to 10,000,000"),
        ({"max_time_s": 10**6}, r"^max_time_s=1000000 is not valid; .* up to 86,400 \(one day"),
        ({"max_time_s": float("inf")}, r"^max_time_s=inf is not valid; expected a positive"),
        ({"confidence": float("nan")}, r"^confidence=nan is not valid; expected a number"),
    ],
)
def test_values_that_would_fail_or_exhaust_memory_while_measuring_are_refused_up_front(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        Spec.from_kwargs(p99_ms=10, **kwargs)


def test_the_documented_limits_themselves_are_accepted() -> None:
    from pytest_latency.core.spec import (
        MAX_CONCURRENCY,
        MAX_RATE_RPS,
        MAX_SAMPLES,
        MAX_TIME_S,
        MAX_WARMUP_CALLS,
    )

    spec = Spec(
        p99_ms=10,
        seed=0,
        warmup=MAX_WARMUP_CALLS,
        rate_rps=MAX_RATE_RPS,
        min_samples=MAX_SAMPLES,
        max_samples=MAX_SAMPLES,
        max_time_s=MAX_TIME_S,
    )
    assert spec.rate_rps == MAX_RATE_RPS
    assert Spec(p99_ms=10, concurrency=MAX_CONCURRENCY).concurrency == MAX_CONCURRENCY
