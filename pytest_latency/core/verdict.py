"""Deciding an SLO from samples: the decisions, the per-target rows and the whole verdict;
``evaluate(samples, spec, look) -> Verdict`` (in ``evaluate``) builds them.

Each percentile target gets three possible answers: PASS when the upper confidence bound is at
or under the target, FAIL when the lower bound is over it, INCONCLUSIVE otherwise.

Sequential looks. The runner evaluates after each block of samples and stops once every target
is decided. Looking repeatedly and stopping at the first decision would inflate the error rate,
so the error budget ``1 - confidence`` is *spent* over the looks: look ``i`` (1-based) uses
one-sided bounds at ``alpha_i = (1 - confidence) * 6 / (pi**2 * i**2)``; the ``alpha_i`` sum to
``1 - confidence``, so over all looks P(wrong PASS) and P(wrong FAIL) each stay within
``1 - confidence`` per target. (Only one of the two errors is possible for a given truth.)
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

NS_PER_MS = 1_000_000
SHARE_METRICS = frozenset(
    {"error_rate", "accuracy", "reference_accuracy", "drop", "agreement", "goodput"}
)
INFO_METRICS = frozenset({"accuracy", "reference_accuracy"})
HIGHER_IS_BETTER = frozenset({"rps", "agreement", "goodput"})


class Decision(enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"

    def __str__(self) -> str:
        return self.value


def look_alpha(confidence: float, look: int) -> float:
    """One-sided error spent at sequential look `look` (1-based); sums to ``1 - confidence``."""
    if look < 1:
        raise ValueError(f"look={look!r} must be >= 1")
    return (1 - confidence) * 6 / (math.pi**2 * look**2)


@dataclass(frozen=True)
class TargetResult:
    """One row of the verdict table.

    ``observed`` is the point estimate (ms for latencies, rps for throughput, a fraction for the
    error rate). ``lower``/``upper`` are one-sided confidence bounds in the same unit, ``None``
    where there is no bound (too few samples, or a metric without one). ``margin`` is
    ``(target - observed) / target`` for limits and ``(observed - target) / target`` for
    ``min_rps``: negative means on the wrong side.
    """

    metric: str  # "p99", "max", "cold_start", "rps", "error_rate"
    target: float
    observed: float | None
    lower: float | None
    upper: float | None
    n: int
    decision: Decision
    quantile: float | None = None
    exceedances: int | None = None  # samples over the target
    samples_to_decide: int | None = None  # INCONCLUSIVE: approx. total n that would decide
    note: str = ""

    @property
    def unit(self) -> str:
        """ "ms", "rps", or "" for shares (error rate, accuracies, drop, agreement)."""
        if self.metric == "rps":
            return "rps"
        return "" if self.metric in SHARE_METRICS else "ms"

    @property
    def informational(self) -> bool:
        """A row shown for context, without a target of its own."""
        return self.metric in INFO_METRICS

    @property
    def margin(self) -> float | None:
        if self.observed is None or self.informational:
            return None
        if self.target == 0:
            return -self.observed
        if self.metric in HIGHER_IS_BETTER:
            return (self.observed - self.target) / self.target
        return (self.target - self.observed) / self.target


@dataclass(frozen=True)
class Verdict:
    """The decision for a whole spec: FAIL if any target fails, else INCONCLUSIVE if any is
    undecided, else PASS. ``problems`` are measurement failures (e.g. a load generator that
    fell behind) that force FAIL whatever the numbers say."""

    decision: Decision
    targets: tuple[TargetResult, ...]
    confidence: float
    alpha: float  # one-sided error spent at the look that produced this verdict
    look: int
    problems: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.decision is Decision.PASS

    @property
    def failed(self) -> bool:
        return self.decision is Decision.FAIL

    @property
    def binding(self) -> TargetResult | None:
        """The target closest to being missed: lowest margin among the decisive rows."""
        rows = [t for t in self.targets if t.margin is not None]
        if not rows:
            return None
        order = {Decision.FAIL: 0, Decision.INCONCLUSIVE: 1, Decision.PASS: 2}
        return min(rows, key=lambda t: (order[t.decision], t.margin))

    def summary(self) -> str:
        """One sentence: the decision and why."""
        if self.problems:
            return f"FAIL: {self.problems[0]}"
        failed = [t for t in self.targets if t.decision is Decision.FAIL]
        open_ = [t for t in self.targets if t.decision is Decision.INCONCLUSIVE]
        pct = round(self.confidence * 100, 2)
        if failed:
            t = failed[0]
            if t.metric == "goodput":
                return (
                    f"FAIL: goodput {_share(t.observed)} is under {_share(t.target)} with "
                    f"{pct:g}% confidence (upper bound {_share(t.upper)}, n={t.n}): {t.note}"
                )
            if t.metric in ("drop", "agreement"):
                over = t.metric == "drop"
                side, which = ("over", "lower") if over else ("under", "upper")
                bound = t.lower if over else t.upper
                return (
                    f"FAIL: accuracy {t.metric} {_share(t.observed)} is {side} "
                    f"{_share(t.target)} with {pct:g}% confidence ({which} bound "
                    f"{_share(bound)}, n={t.n}; {t.note or 'paired on the same examples'})"
                )
            if t.metric == "error_rate":
                return (
                    f"FAIL: {t.note} (error rate {t.observed or 0:.1%}, allowed "
                    f"{t.target:.1%}); the first traceback is below"
                )
            if t.quantile is not None and t.lower is not None:
                return (
                    f"FAIL: {t.metric} is over {t.target:g} {t.unit} with {pct:g}% confidence "
                    f"(lower bound {t.lower:.3f} {t.unit}, estimate {t.observed:.3f} {t.unit}, "
                    f"n={t.n})"
                )
            return f"FAIL: {t.metric} {_fmt(t.observed)} misses {t.target:g} {t.unit}. {t.note}"
        if open_ and open_[0].metric == "goodput":
            t = open_[0]
            more = (
                f"about {t.samples_to_decide:,} calls in all would decide it"
                if t.samples_to_decide
                else "the estimate sits on the target; more calls will not decide it"
            )
            return (
                f"INCONCLUSIVE: goodput {_share(t.observed)} vs {_share(t.target)}: bounds "
                f"[{_share(t.lower)}, {_share(t.upper)}] straddle the target at {pct:g}% "
                f"confidence with n={t.n}; {more}"
            )
        if open_ and open_[0].metric in SHARE_METRICS:
            t = open_[0]
            return (
                f"INCONCLUSIVE: accuracy {t.metric} {_share(t.observed)} vs {_share(t.target)}: "
                f"bounds [{_share(t.lower)}, {_share(t.upper)}] straddle the target at {pct:g}% "
                f"confidence with n={t.n}; a larger evaluation set would narrow them"
            )
        if open_:
            t = open_[0]
            more = (
                f"about {t.samples_to_decide:,} samples in all would decide it"
                if t.samples_to_decide
                else "the estimate sits on the target; more samples will not decide it"
            )
            return (
                f"INCONCLUSIVE: {t.metric} {_fmt(t.observed)} {t.unit} vs {t.target:g} "
                f"{t.unit}: bounds [{_fmt(t.lower)}, {_fmt(t.upper)}] straddle the target at "
                f"{pct:g}% confidence with n={t.n}; {more}"
            )
        b = self.binding
        tail = f" (binding: {b.metric}, margin {b.margin:+.0%})" if b and b.margin else ""
        gated = [t for t in self.targets if not t.informational]
        return f"PASS: all {len(gated)} target(s) met with {pct:g}% confidence{tail}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
