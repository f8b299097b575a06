"""`evaluate`: three-valued decisions from samples, one row per target."""

from __future__ import annotations

import numpy as np

from pytest_latency.core.evaluate import evaluate
from pytest_latency.core.samples import LoadStats, Samples
from pytest_latency.core.spec import Spec
from pytest_latency.core.verdict import Decision


def _samples(ms: np.ndarray, **kw: object) -> Samples:
    return Samples(latencies_ns=(np.asarray(ms) * 1e6).astype(np.int64), **kw)  # type: ignore[arg-type]


RNG = np.random.default_rng(3)


def test_well_under_target_passes_with_the_upper_bound_under_it() -> None:
    v = evaluate(_samples(RNG.uniform(1, 2, 1000)), Spec(p99_ms=10))
    assert v.decision is Decision.PASS
    row = v.targets[0]
    assert row.upper is not None
    assert row.upper <= 10
    assert row.margin is not None
    assert row.margin > 0.7
    assert v.summary().startswith("PASS: all 1 target(s) met with 95% confidence")


def test_over_target_fails_with_the_lower_bound_over_it() -> None:
    v = evaluate(_samples(RNG.uniform(20, 30, 1000)), Spec(p99_ms=10))
    assert v.decision is Decision.FAIL
    assert v.targets[0].lower is not None
    assert v.targets[0].lower > 10
    assert "p99 is over 10 ms with 95% confidence" in v.summary()


def test_estimate_on_the_target_is_inconclusive_and_says_how_many_samples_would_decide() -> None:
    data = np.concatenate([np.full(985, 1.0), np.full(15, 50.0)])  # 1.5 % over 10 ms
    v = evaluate(_samples(data), Spec(p99_ms=10))
    assert v.decision is Decision.INCONCLUSIVE
    row = v.targets[0]
    assert row.exceedances == 15
    assert row.samples_to_decide is not None
    assert row.samples_to_decide > 1000
    assert "samples in all would decide it" in v.summary()


def test_too_few_samples_for_a_p99_bound_is_inconclusive_not_pass() -> None:
    v = evaluate(_samples(np.full(50, 1.0)), Spec(p99_ms=10))
    assert v.decision is Decision.INCONCLUSIVE
    assert v.targets[0].upper is None


def test_any_error_fails_by_default_and_an_error_budget_allows_some() -> None:
    data = _samples(np.full(400, 1.0), errors=2, first_error="Traceback ... KeyError")
    strict = evaluate(data, Spec(p99_ms=10))
    assert strict.decision is Decision.FAIL
    assert strict.summary().startswith("FAIL: 2 of 402 calls raised")
    assert evaluate(data, Spec(p99_ms=10, max_error_rate=0.01)).decision is Decision.PASS


def test_max_cold_start_and_throughput_targets_are_point_checks() -> None:
    data = _samples(np.full(400, 1.0), cold_start_ns=80_000_000, wall_ns=400_000_000)
    v = evaluate(data, Spec(p50_ms=0.4, max_ms=0.5, cold_start_ms=50, min_rps=2000))
    rows = {t.metric: t for t in v.targets}
    assert rows["max"].decision is Decision.FAIL
    assert rows["cold_start"].decision is Decision.FAIL
    assert rows["cold_start"].observed == 80
    assert rows["rps"].observed == 1000
    assert rows["rps"].decision is Decision.FAIL
    assert rows["rps"].margin == -0.5
    assert v.decision is Decision.FAIL


def test_a_load_generator_that_fell_behind_fails_whatever_the_latencies() -> None:
    load = LoadStats(mode="open", offered_rps=1000, issued=400, late=300, achieved_rps=500)
    v = evaluate(_samples(np.full(400, 1.0), load=load), Spec(p99_ms=10, rate_rps=1000))
    assert v.decision is Decision.FAIL
    assert "load generator fell behind: offered 1000 rps" in v.summary()


def test_later_looks_spend_less_error_so_bounds_widen() -> None:
    data = _samples(RNG.lognormal(0, 0.5, 2000))
    first = evaluate(data, Spec(p99_ms=100), look=1).targets[0]
    fifth = evaluate(data, Spec(p99_ms=100), look=5).targets[0]
    assert first.upper is not None
    assert fifth.upper is not None
    assert fifth.upper >= first.upper
    assert first.lower is not None
    assert fifth.lower is not None
    assert fifth.lower <= first.lower
