"""Properties of the quantile bounds (Hypothesis) and their coverage by simulation."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_latency.core.stats import (
    confidence_interval,
    lower_rank,
    quantile,
    quantile_bounds,
    upper_rank,
)
from pytest_latency.core.verdict import look_alpha

latencies = st.lists(st.integers(1, 10**9), min_size=1, max_size=3000).map(
    lambda xs: np.sort(np.asarray(xs, dtype=np.int64))
)
qs = st.sampled_from([0.5, 0.9, 0.95, 0.99, 0.999])
alphas = st.floats(0.001, 0.3)


@given(latencies, qs, alphas)
def test_bounds_bracket_the_estimate(data: np.ndarray, q: float, alpha: float) -> None:
    lo, hi = quantile_bounds(data, q, alpha)
    est = quantile(data, q)
    if lo is not None:
        assert lo <= est
    if hi is not None:
        assert est <= hi


@given(st.integers(1, 20000), st.sampled_from([(0.5, 0.9), (0.9, 0.99), (0.99, 0.999)]), alphas)
def test_ranks_are_monotone_in_the_quantile(
    n: int, pair: tuple[float, float], alpha: float
) -> None:
    q1, q2 = pair
    u1, u2 = upper_rank(n, q1, alpha), upper_rank(n, q2, alpha)
    if u2 is not None:
        assert u1 is not None
        assert u1 <= u2
    l1, l2 = lower_rank(n, q1, alpha), lower_rank(n, q2, alpha)
    if l1 is not None:
        assert l2 is not None
        assert l1 <= l2


@given(st.integers(1, 20000), qs, st.floats(0.5, 0.98), st.floats(0.001, 0.02))
def test_higher_confidence_never_narrows_the_bounds(
    n: int, q: float, confidence: float, extra: float
) -> None:
    a_lo, a_hi = 1 - confidence, 1 - min(0.999, confidence + extra)
    u_lo, u_hi = upper_rank(n, q, a_lo), upper_rank(n, q, a_hi)
    if u_hi is not None:
        assert u_lo is not None
        assert u_lo <= u_hi
    l_lo, l_hi = lower_rank(n, q, a_lo), lower_rank(n, q, a_hi)
    if l_lo is None:
        assert l_hi is None
    elif l_hi is not None:
        assert l_hi <= l_lo


def _bimodal_quantile(q: float) -> float:
    """98 % N(10, 1) + 2 % N(50, 5): the slow mode owns p99."""
    fast, slow = NormalDist(10, 1), NormalDist(50, 5)
    lo, hi = 0.0, 100.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.98 * fast.cdf(mid) + 0.02 * slow.cdf(mid) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _draw(kind: str, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    if kind == "normal":
        return rng.normal(100, 10, shape)
    if kind == "lognormal":
        return rng.lognormal(0, 0.5, shape)
    slow = rng.random(shape) < 0.02
    return np.where(slow, rng.normal(50, 5, shape), rng.normal(10, 1, shape))


def _true_quantile(kind: str, q: float) -> float:
    if kind == "normal":
        return NormalDist(100, 10).inv_cdf(q)
    if kind == "lognormal":
        return float(np.exp(NormalDist(0, 0.5).inv_cdf(q)))
    return _bimodal_quantile(q)


@pytest.mark.parametrize("kind", ["normal", "lognormal", "bimodal"])
@pytest.mark.parametrize(("q", "n"), [(0.5, 200), (0.9, 500), (0.99, 1500)])
def test_nominal_95_percent_interval_covers_at_least_93_percent(
    kind: str, q: float, n: int
) -> None:
    sims = 2000
    rng = np.random.default_rng(20261129)
    # Scale to integer nanoseconds like real samples (1 unit = 1 ms).
    data = np.sort((_draw(kind, rng, (sims, n)) * 1e6).astype(np.int64), axis=1)
    truth = _true_quantile(kind, q) * 1e6
    covered = 0
    for row in data:
        lo, hi = confidence_interval(row, q, 0.95)
        covered += (lo is None or lo <= truth) and (hi is None or truth <= hi)
    assert covered / sims >= 0.93, f"coverage {covered / sims:.3f}"


def test_sequential_looks_keep_the_false_pass_rate_within_the_error_budget() -> None:
    """True p99 sits exactly on the target; looks at n1, 2 n1, 4 n1 ... must wrongly PASS in
    at most 5 % of runs. Repeating a fixed 5 % test at each look would exceed that."""
    rng = np.random.default_rng(7)
    sims, q, confidence = 2000, 0.99, 0.95
    n1 = 400
    looks = [n1 * 2**i for i in range(5)]  # 400 .. 6400
    data = rng.lognormal(0, 0.5, (sims, looks[-1]))
    target = float(np.exp(NormalDist(0, 0.5).inv_cdf(q)))
    spent = np.zeros(sims, dtype=bool)
    naive = np.zeros(sims, dtype=bool)
    for i, n in enumerate(looks, start=1):
        block = np.sort(data[:, :n], axis=1)
        u = upper_rank(n, q, look_alpha(confidence, i))
        u_naive = upper_rank(n, q, 1 - confidence)
        if u is not None:
            spent |= block[:, u - 1] <= target
        assert u_naive is not None
        naive |= block[:, u_naive - 1] <= target
    assert spent.mean() <= 0.05 + 0.01, f"false PASS rate {spent.mean():.3f}"
    assert naive.mean() > spent.mean()  # the spending is what keeps the rate down


@settings(max_examples=50)
@given(st.floats(0.5, 0.999), st.integers(1, 30))
def test_error_spent_over_all_looks_never_exceeds_the_budget(confidence: float, looks: int) -> None:
    total = sum(look_alpha(confidence, i) for i in range(1, looks + 1))
    assert total <= (1 - confidence) + 1e-12
