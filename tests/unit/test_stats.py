"""Order-statistic bounds, binomial tails and sample sizes, cross-checked against SciPy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from pytest_latency.core.stats import (
    binom_cdf,
    binom_sf,
    confidence_interval,
    lower_rank,
    min_samples_for_quantile,
    nearest_rank,
    quantile,
    quantile_bounds,
    samples_to_decide,
    upper_rank,
)


@pytest.mark.parametrize(
    ("n", "p"), [(1, 0.5), (10, 0.9), (299, 0.99), (5000, 0.999), (20000, 0.5)]
)
def test_binomial_tails_match_scipy(n: int, p: float) -> None:
    ks = np.unique(np.linspace(0, n, 40).astype(int))
    for k in ks:
        assert binom_cdf(int(k), n, p) == pytest.approx(stats.binom.cdf(k, n, p), abs=1e-9)
        assert binom_sf(int(k), n, p) == pytest.approx(stats.binom.sf(k - 1, n, p), abs=1e-9)


def _loadgen_min_queries(t: int, p: float, c: float) -> int:
    """MLPerf LoadGen's MinPassingQueriesFinder, restated independently: the smallest h with
    I_p(h, t + 1) < 1 - c (regularised incomplete beta), plus the t failing queries."""
    h = 1
    while special.betainc(h, t + 1, p) >= 1 - c:
        h += 1
    return h + t


def test_zero_exceedance_minimums_are_the_published_ones() -> None:
    # DESIGN.md: 299 for p99 at 95 %; LoadGen's early-stopping default confidence is 99 %.
    assert min_samples_for_quantile(0.99, 0.95) == 299
    assert min_samples_for_quantile(0.99, 0.99) == 459
    assert min_samples_for_quantile(0.90, 0.99) == 44
    assert min_samples_for_quantile(0.999, 0.95) == math.ceil(math.log(0.05) / math.log(0.999))


@pytest.mark.parametrize("q", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("exceedances", [0, 1, 2, 5, 20])
def test_min_samples_reproduce_loadgen_early_stopping(
    q: float, confidence: float, exceedances: int
) -> None:
    assert min_samples_for_quantile(q, confidence, exceedances) == _loadgen_min_queries(
        exceedances, q, confidence
    )


def test_min_samples_rejects_impossible_arguments() -> None:
    with pytest.raises(ValueError, match="q=1"):
        min_samples_for_quantile(1, 0.95)
    with pytest.raises(ValueError, match=r"confidence=1\.5"):
        min_samples_for_quantile(0.99, 1.5)
    with pytest.raises(ValueError, match="exceedances=-1"):
        min_samples_for_quantile(0.99, 0.95, -1)


@pytest.mark.parametrize(
    ("n", "q", "alpha"), [(300, 0.99, 0.05), (1000, 0.5, 0.025), (50, 0.9, 0.1)]
)
def test_ranks_are_the_tightest_that_keep_the_error_bound(n: int, q: float, alpha: float) -> None:
    u = upper_rank(n, q, alpha)
    assert u is not None
    assert stats.binom.sf(u - 1, n, q) <= alpha + 1e-12  # P(Bin >= u) <= alpha
    assert u == 1 or stats.binom.sf(u - 2, n, q) > alpha  # u - 1 would not do
    lo = lower_rank(n, q, alpha)
    assert lo is not None
    assert stats.binom.cdf(lo - 1, n, q) <= alpha + 1e-12
    assert lo == n or stats.binom.cdf(lo, n, q) > alpha


def test_too_few_samples_have_no_upper_bound_for_a_high_percentile() -> None:
    assert upper_rank(298, 0.99, 0.05) is None
    assert upper_rank(299, 0.99, 0.05) == 299
    assert lower_rank(1, 0.5, 0.05) is None


def test_nearest_rank_is_the_inverted_cdf_definition() -> None:
    data = np.arange(1, 101, dtype=np.int64)
    assert quantile(data, 0.99) == 99  # ceil(0.99 * 100) = 99, not interpolated
    assert quantile(data, 0.5) == 50
    assert nearest_rank(1, 0.999) == 1
    for q in (0.1, 0.5, 0.9, 0.99):
        expected = np.percentile(data, q * 100, method="inverted_cdf")
        assert quantile(data, q) == expected


def test_samples_to_decide_grows_as_the_estimate_nears_the_target() -> None:
    far = samples_to_decide(1000, 2, 0.99, 0.01)  # 0.2 % over vs 1 % allowed
    near = samples_to_decide(1000, 8, 0.99, 0.01)  # 0.8 % over
    assert far is not None
    assert near is not None
    assert near > far > 1000
    assert samples_to_decide(1000, 10, 0.99, 0.01) is None  # exactly on the target


def test_confidence_interval_is_two_sided_at_half_the_error_each() -> None:
    data = np.sort(np.random.default_rng(1).exponential(1.0, 2000)).astype(np.int64)
    assert confidence_interval(data, 0.9, 0.95) == quantile_bounds(data, 0.9, 0.025)
