"""Distribution-free statistics for percentiles: estimates, confidence bounds, sample sizes.

Method (Hahn & Meeker; MLPerf LoadGen's early stopping is the one-sided zero-tolerance case):
for i.i.d. samples with order statistics ``X(1) <= ... <= X(n)``, the number of samples below
the true quantile ``xi_q`` is Binomial(n, q). Hence

* ``X(u)`` is an upper confidence bound for ``xi_q`` at level ``1 - alpha`` when
  ``P(Bin(n, q) >= u) <= alpha`` -- the smallest such ``u`` is used;
* ``X(l)`` is a lower bound at level ``1 - alpha`` when ``P(Bin(n, q) <= l - 1) <= alpha`` --
  the largest such ``l`` is used.

No distribution is assumed. Point estimates use the nearest-rank (inverted CDF, Hyndman & Fan
type 1) definition: ``X(ceil(q * n))``, always an observed latency, never an interpolation.

Example::

    >>> min_samples_for_quantile(0.99, 0.95)          # p99, 95 %, zero exceedances
    299
    >>> min_samples_for_quantile(0.99, 0.99)          # LoadGen's early-stopping minimum
    459
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


def _check_q(q: float) -> None:
    if not 0 < q < 1:
        raise ValueError(f"quantile q={q!r} must be strictly between 0 and 1")


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} must be strictly between 0 and 1")


@lru_cache(maxsize=8)  # arrays of n+1 floats; looks reuse the same n per target
def _binom_tails(n: int, p: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``(cdf, sf)`` of Binomial(n, p): ``cdf[k] = P(X <= k)`` and ``sf[k] = P(X >= k)``.

    Both tails are summed from their own end so that small tail probabilities keep their
    precision (no ``1 - cdf`` cancellation). Log-pmf by the ratio recursion, O(n).
    """
    k = np.arange(1, n + 1, dtype=np.float64)
    steps = np.log(n - k + 1) - np.log(k) + (math.log(p) - math.log1p(-p))
    logpmf = np.empty(n + 1, dtype=np.float64)
    logpmf[0] = n * math.log1p(-p)
    np.cumsum(steps, out=logpmf[1:])
    logpmf[1:] += logpmf[0]
    pmf = np.exp(logpmf)
    cdf = np.cumsum(pmf)
    sf = np.cumsum(pmf[::-1])[::-1]
    cdf.setflags(write=False)
    sf.setflags(write=False)
    return cdf, sf


def binom_cdf(k: int, n: int, p: float) -> float:
    """``P(Bin(n, p) <= k)``."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return float(min(1.0, _binom_tails(n, p)[0][k]))


def binom_sf(k: int, n: int, p: float) -> float:
    """``P(Bin(n, p) >= k)``."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return float(min(1.0, _binom_tails(n, p)[1][k]))


def upper_rank(n: int, q: float, alpha: float) -> int | None:
    """1-based rank ``u`` of the order statistic that bounds ``xi_q`` from above at ``1-alpha``.

    ``None`` when ``n`` is too small for any finite upper bound (``q**n > alpha``).
    """
    _check_q(q)
    _check_alpha(alpha)
    if n <= 0:
        return None
    sf = _binom_tails(n, q)[1]
    # sf is non-increasing; want the first index u in [1, n] with sf[u] <= alpha.
    idx = int(np.searchsorted(-sf[1:], -alpha, side="left")) + 1
    return idx if idx <= n else None


def lower_rank(n: int, q: float, alpha: float) -> int | None:
    """1-based rank ``l`` of the order statistic that bounds ``xi_q`` from below at ``1-alpha``.

    ``None`` when ``n`` is too small for any lower bound (``(1-q)**n > alpha``).
    """
    _check_q(q)
    _check_alpha(alpha)
    if n <= 0:
        return None
    cdf = _binom_tails(n, q)[0]
    # cdf is non-decreasing; want the largest l with cdf[l-1] <= alpha.
    count = int(np.searchsorted(cdf[:n], alpha, side="right"))
    return count if count >= 1 else None


def nearest_rank(n: int, q: float) -> int:
    """1-based rank of the nearest-rank ``q`` quantile of ``n`` samples: ``ceil(q*n)``."""
    _check_q(q)
    if n <= 0:
        raise ValueError("no samples")
    # The small slack keeps float products such as 0.99 * 100 = 99.00000000000001 exact.
    return max(1, min(n, math.ceil(q * n - 1e-9)))


def quantile(sorted_ns: IntArray, q: float) -> int:
    """Nearest-rank ``q`` quantile of already sorted samples."""
    return int(sorted_ns[nearest_rank(len(sorted_ns), q) - 1])


def quantile_bounds(sorted_ns: IntArray, q: float, alpha: float) -> tuple[int | None, int | None]:
    """One-sided ``(lower, upper)`` bounds for ``xi_q``, each holding at ``1 - alpha``.

    ``None`` stands for "no bound yet" (too few samples): lower = 0, upper = infinity.
    """
    n = len(sorted_ns)
    lo = lower_rank(n, q, alpha)
    hi = upper_rank(n, q, alpha)
    return (
        int(sorted_ns[lo - 1]) if lo is not None else None,
        int(sorted_ns[hi - 1]) if hi is not None else None,
    )


def confidence_interval(
    sorted_ns: IntArray, q: float, confidence: float
) -> tuple[int | None, int | None]:
    """Two-sided equal-tailed interval for ``xi_q`` with coverage at least `confidence`."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} must be strictly between 0 and 1")
    return quantile_bounds(sorted_ns, q, (1 - confidence) / 2)


def min_samples_for_quantile(q: float, confidence: float, exceedances: int = 0) -> int:
    """Fewest samples that can show ``xi_q <= limit`` at `confidence` with `exceedances` over it.

    With ``k`` samples over the limit among ``n``, the bound holds when
    ``P(Bin(n, q) >= n - k) <= 1 - confidence``. For ``k = 0`` that is
    ``ceil(ln(1 - confidence) / ln(q))``: 299 for p99 at 95 %, 459 at 99 % (LoadGen's
    early-stopping minimum; LoadGen states it as ``h`` passing queries besides ``t = k``
    failing ones, and ``n = h + t``).
    """
    _check_q(q)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} must be strictly between 0 and 1")
    if exceedances < 0:
        raise ValueError(f"exceedances={exceedances!r} must be >= 0")
    alpha = 1 - confidence
    k = exceedances
    # Zero-exceedance closed form, then a bracketed search over n for k > 0.
    h0 = math.ceil(math.log(alpha) / math.log(q) - 1e-12)

    def ok(n: int) -> bool:
        return binom_sf(n - k, n, q) <= alpha

    lo, hi = h0 + k, max(h0 + k, 1) * 2
    while not ok(hi):
        lo, hi = hi, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def samples_to_decide(n: int, exceedances: int, q: float, alpha: float) -> int | None:
    """Approximate total sample count at which a target would be decided.

    Assumes the observed exceedance rate ``exceedances / n`` persists, and uses the normal
    approximation of the binomial (this is a planning figure, not a decision). ``None`` when
    the observed rate equals ``1 - q``: the estimate sits on the target and no finite count
    is expected to decide it.
    """
    _check_q(q)
    _check_alpha(alpha)
    if n <= 0:
        return min_samples_for_quantile(q, 1 - alpha)
    expected = (1 - q) * n  # exceedances if the quantile sat exactly on the target
    if abs(exceedances - expected) < 0.5 and exceedances > 0:
        return None  # on the boundary: no trend to extrapolate
    below = exceedances < expected
    floor = min_samples_for_quantile(q, 1 - alpha) if below else 0
    if exceedances == 0:
        return max(floor, n + 1)  # the zero-exceedance minimum decides it
    gap = abs((1 - q) - exceedances / n)
    z = NormalDist().inv_cdf(1 - alpha)
    needed = math.ceil(z * z * q * (1 - q) / (gap * gap))
    return max(needed, floor, n + 1)


def _bisect(f: Any, lo: float = 0.0, hi: float = 1.0, iters: int = 60) -> float:
    """Root of a monotone increasing `f` on [lo, hi]."""
    for _ in range(iters):
        mid = (lo + hi) / 2
        if f(mid) < 0:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def clopper_pearson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """One-sided exact bounds ``(lower, upper)`` for a binomial share, each at ``1 - alpha``."""
    if n <= 0:
        return 0.0, 1.0
    # lower: P(X >= k | p) = alpha; upper: P(X <= k | p) = alpha (both monotone in p).
    lower = (
        0.0 if k == 0 else _bisect(lambda p: binom_sf(k, n, min(max(p, 1e-15), 1 - 1e-15)) - alpha)
    )
    upper = (
        1.0 if k == n else _bisect(lambda p: alpha - binom_cdf(k, n, min(max(p, 1e-15), 1 - 1e-15)))
    )
    return lower, upper
