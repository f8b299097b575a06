"""Plan before you measure: how many samples each target needs, and how long they take.

    >>> from pytest_latency.core.plan import plan
    >>> [(p.target, p.min_samples) for p in plan(Spec(p50_ms=4, p99_ms=10))]
    [('p50 <= 4 ms', 6), ('p99 <= 10 ms', 348)]

A percentile target ``p_q <= T`` is shown met at confidence ``c`` only when enough samples lie
at or under ``T``. With no sample over it, the fewest samples that can do it are
``ceil(ln(alpha) / ln(q))`` (``min_samples_for_quantile``), with ``alpha`` the error the
runner spends at its first look; every sample over ``T`` raises the count (the ``k over``
column: ``k`` samples over the target, i.e. a true quantile close to it). The time is that
count at the offered rate (``rate_rps``) or at one call per ``call_ms`` (a closed loop of one
worker), before warm-up. A target that cannot be decided within ``max_samples`` or
``max_time_s`` can only end INCONCLUSIVE -- or FAIL -- whatever the code does.
"""

from __future__ import annotations

from dataclasses import dataclass

from .spec import Spec
from .stats import min_samples_for_quantile
from .verdict import look_alpha

__all__ = ["TargetPlan", "plan", "undecidable"]

DEFAULT_CONFIDENCE = 0.95
DEFAULT_MAX_SAMPLES = 200_000
DEFAULT_MAX_TIME_S = 30.0


@dataclass(frozen=True)
class TargetPlan:
    target: str  # "p99 <= 10 ms"
    quantile: float
    min_samples: int  # fewest samples that can show it met (none over the target)
    with_exceedances: tuple[tuple[int, int], ...]  # (k samples over, samples needed)
    seconds: float | None  # min_samples at the rate; None when the rate is unknown
    max_samples: int
    max_time_s: float

    @property
    def fits(self) -> bool | None:
        """Whether the budget can hold the fewest samples (None: rate unknown, samples fit)."""
        if self.min_samples > self.max_samples:
            return False
        if self.seconds is None:
            return None
        return self.seconds <= self.max_time_s


def _rate(spec: Spec, call_ms: float | None) -> float | None:
    if spec.rate_rps is not None:
        return float(spec.rate_rps)
    if call_ms is not None and call_ms > 0:
        return 1000.0 / call_ms * (spec.concurrency or 1)
    return None


def plan(
    spec: Spec, call_ms: float | None = None, exceedances: tuple[int, ...] = (1, 5)
) -> list[TargetPlan]:
    """One `TargetPlan` per percentile target (and per stage budget, at p99) of `spec`."""
    confidence = spec.confidence if spec.confidence is not None else DEFAULT_CONFIDENCE
    first_look = 1 - look_alpha(confidence, 1)
    rate = _rate(spec, call_ms)
    max_samples = spec.max_samples or DEFAULT_MAX_SAMPLES
    max_time_s = spec.max_time_s if spec.max_time_s is not None else DEFAULT_MAX_TIME_S
    rows = [(q, f"p{q * 100:g} <= {t:g} ms") for q, t in spec.percentile_targets]
    rows += [(0.99, f"{name}.p99 <= {t:g} ms") for name, t in (spec.budget or {}).items()]
    out = []
    for q, label in rows:
        n = min_samples_for_quantile(q, first_look)
        more = tuple((k, min_samples_for_quantile(q, first_look, k)) for k in exceedances)
        out.append(
            TargetPlan(
                label,
                q,
                n,
                more,
                None if rate is None else n / rate,
                max_samples,
                max_time_s,
            )
        )
    return out


def undecidable(spec: Spec, call_ms: float | None = None) -> list[str]:
    """Why some target of `spec` cannot be decided within its budget (empty when all can)."""
    reasons = []
    for p in plan(spec, call_ms):
        if p.min_samples > p.max_samples:
            reasons.append(
                f"{p.target} needs at least {p.min_samples:,} samples at this confidence, "
                f"but max_samples={p.max_samples:,}: raise max_samples to {p.min_samples:,} "
                "or more, or lower the confidence"
            )
        elif p.seconds is not None and p.seconds > p.max_time_s:
            reasons.append(
                f"{p.target} needs at least {p.min_samples:,} samples at this confidence, "
                f"{p.seconds:,.1f} s at {p.min_samples / p.seconds:g}/s, but "
                f"max_time_s={p.max_time_s:g}: raise max_time_s to {p.seconds * 1.5:,.0f} or "
                "more (room for warm-up and a second look), or lower the confidence"
            )
    return reasons
