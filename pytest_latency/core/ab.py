"""A/B gating in one job: base and head measured in alternating rounds, compared per round.

    rounds = [(base_round_1_ns, head_round_1_ns), (base_round_2_ns, head_round_2_ns), ...]
    change = paired_change(rounds, 0.99, threshold=0.05, alpha=0.025)
    change.classification, change.ratio, change.lower, change.upper

A saved run compares today's samples with samples taken earlier, perhaps on another runner;
the machine's drift between the two lands entirely in the ratio. Here every round measures
both sides back to back (in the order A B, B A, A B, ...: `schedule`), so drift that moves a
round moves both of its sides. Per round ``r`` the change is the log-ratio of the nearest-rank
percentiles of that round's samples, ``d_r = ln(head_q,r / base_q,r)``; over ``R`` rounds::

    ratio = exp(mean d)     lower = exp(mean d - t(1 - alpha, R - 1) * s / sqrt(R))
                            upper = exp(mean d + t(1 - alpha, R - 1) * s / sqrt(R))

with ``s`` the rounds' standard deviation of ``d`` and ``t`` Student's quantile: each end is a
one-sided ``1 - alpha`` bound for the median per-round ratio when the ``d_r`` are independent
and roughly normal. Both the sampling noise of a round's percentile and drift *between* the
two halves of a round show up in ``s``, so they widen the interval instead of biasing it;
drift shared by a round's two halves cancels. The classification is `regression.classify`'s
(the same band ``[1 / (1 + t), 1 + t]`` as the saved-run gate).

The noise floor (`ABChange.detectable`) is the smallest true slowdown such a gate calls a
regression 9 times in 10 with threshold 0 at ``R`` rounds, from the measured ``s``:
``exp((t(1 - alpha, R - 1) + t(0.9, R - 1)) * s / sqrt(R)) - 1``; `detectable_at` projects it
to other round counts, assuming the per-round spread stays what it was.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .regression import (
    INCONCLUSIVE,
    NS_PER_MS,
    SEVERITY,
    classify,
    judged_dict,
    quantiles_for,
    threshold_for,
)
from .stats import quantile

BASE, HEAD = "base", "head"
MIN_ROUNDS = 3  # two degrees of freedom: fewer gives no usable spread
MAX_ROUNDS = 50
POWER = 0.9  # the noise floor: the change detected 9 times in 10


def schedule(rounds: int) -> list[tuple[str, str]]:
    """The run order of each round: base first in odd rounds, head first in even ones
    (A B, B A, A B, ...), so a steady drift favours neither side over a pair of rounds."""
    if not MIN_ROUNDS <= rounds <= MAX_ROUNDS:
        raise ValueError(
            f"rounds={rounds!r} is not valid; expected a whole number from {MIN_ROUNDS} to "
            f"{MAX_ROUNDS} (each round runs the tests once per side)"
        )
    return [(BASE, HEAD) if i % 2 == 0 else (HEAD, BASE) for i in range(rounds)]


def _t_abs_cdf(t: float, df: int) -> float:
    """``P(|T| <= t)`` for Student's t with a whole number of degrees of freedom: the finite
    series of Abramowitz & Stegun 26.7.3-4 (exact; no SciPy in the core)."""
    theta = math.atan(t / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 1:
        term, total = math.cos(theta), 0.0
        if df > 1:
            total = term
            for k in range(2, df - 1, 2):
                term *= c2 * k / (k + 1)
                total += term
        return (2 / math.pi) * (theta + math.sin(theta) * total)
    term, total = 1.0, 1.0
    for k in range(1, df - 1, 2):
        term *= c2 * k / (k + 1)
        total += term
    return math.sin(theta) * total


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile ``t(p, df)`` for ``0.5 <= p < 1`` (bisection on the exact CDF)."""
    if not 0.5 <= p < 1 or df < 1:
        raise ValueError(f"t_quantile needs 0.5 <= p < 1 and df >= 1, got p={p!r}, df={df!r}")
    target = 2 * p - 1
    lo, hi = 0.0, 1.0
    while _t_abs_cdf(hi, df) < target:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if _t_abs_cdf(mid, df) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


def detectable_at(sd_log: float, rounds: int, alpha: float) -> float:
    """The smallest true slowdown (0.05 = 5 %) called a regression with probability `POWER`
    at threshold 0 after `rounds` rounds, for a per-round log-ratio spread `sd_log`."""
    df = rounds - 1
    return math.expm1((t_quantile(1 - alpha, df) + t_quantile(POWER, df)) * sd_log / rounds**0.5)


@dataclass(frozen=True)
class ABChange:
    """One percentile of one test: head against base over the rounds."""

    metric: str  # "p99"
    quantile: float
    base_ms: float | None  # the percentile of each side's samples pooled over the rounds
    head_ms: float | None
    ratio: float | None  # exp(mean per-round log-ratio): head / base
    lower: float | None  # one-sided bounds, each at 1 - alpha
    upper: float | None
    threshold: float
    alpha: float
    rounds: int  # rounds with samples on both sides
    n_base: int
    n_head: int
    sd_log: float | None  # spread of the per-round log-ratios
    detectable: float | None  # the noise floor at these rounds (see the module docstring)
    round_ratios: tuple[float, ...]
    classification: str

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {
            "round_ratios": list(self.round_ratios)
        }


def _sorted(samples: Sequence[int] | np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.sort(np.asarray(samples, dtype=np.int64))


def paired_change(
    rounds: Sequence[tuple[Sequence[int], Sequence[int]]],
    q: float,
    *,
    threshold: float,
    alpha: float,
    metric: str | None = None,
) -> ABChange:
    """Classify head against base from per-round samples ``[(base_ns, head_ns), ...]``.

    A round missing either side is left out; with fewer than `MIN_ROUNDS` complete rounds
    the change is inconclusive (no bounds).
    """
    label = metric or f"p{q * 100:g}".replace(".", "")
    pairs = [(_sorted(b), _sorted(h)) for b, h in rounds if len(b) and len(h)]
    pooled_b = _sorted(np.concatenate([b for b, _ in pairs])) if pairs else _sorted([])
    pooled_h = _sorted(np.concatenate([h for _, h in pairs])) if pairs else _sorted([])
    base_ms = quantile(pooled_b, q) / NS_PER_MS if len(pooled_b) else None
    head_ms = quantile(pooled_h, q) / NS_PER_MS if len(pooled_h) else None
    ratios = tuple(max(1, quantile(h, q)) / max(1, quantile(b, q)) for b, h in pairs)
    common = (label, q, base_ms, head_ms)
    n = (len(pooled_b), len(pooled_h))
    if len(pairs) < MIN_ROUNDS:
        ratio = float(np.exp(np.mean(np.log(ratios)))) if ratios else None
        return ABChange(
            *common,
            ratio,
            None,
            None,
            threshold,
            alpha,
            len(pairs),
            *n,
            None,
            None,
            ratios,
            INCONCLUSIVE,
        )
    logs = np.log(np.asarray(ratios))
    mean, sd = float(logs.mean()), float(logs.std(ddof=1))
    half = t_quantile(1 - alpha, len(pairs) - 1) * sd / math.sqrt(len(pairs))
    lower, upper = math.exp(mean - half), math.exp(mean + half)
    return ABChange(
        *common,
        math.exp(mean),
        lower,
        upper,
        threshold,
        alpha,
        len(pairs),
        *n,
        sd,
        detectable_at(sd, len(pairs), alpha),
        ratios,
        classify(lower, upper, threshold),
    )


@dataclass(frozen=True)
class ABResult:
    """One measurement (test id and name) of the suite, head against base."""

    nodeid: str
    name: str
    named: bool
    threshold: float
    confidence: float
    changes: tuple[ABChange, ...] = ()
    note: str = ""  # why nothing was compared (a side missing)

    @property
    def label(self) -> str:
        return f"{self.nodeid} ({self.name})" if self.named else self.nodeid

    @property
    def classification(self) -> str:
        found = {c.classification for c in self.changes} or {INCONCLUSIVE}
        return next(c for c in SEVERITY if c in found)

    def summary(self) -> str:
        if self.note:
            return f"INCONCLUSIVE: {self.note}"
        shown = [c for c in self.changes if c.classification == self.classification]
        c = (shown or list(self.changes))[0]
        bounds = "no bounds" if c.lower is None else f"bounds [{c.lower:.3f}, {c.upper:.3f}]"
        ratio = "-" if c.ratio is None else f"{c.ratio:.3f}x"
        return (
            f"{self.classification.upper()}: {c.metric} head/base {ratio}, {bounds} over "
            f"{c.rounds} rounds (threshold {self.threshold:.1%}, "
            f"{round(self.confidence * 100, 2):g}% confidence)"
        )

    def to_dict(self) -> dict[str, Any]:
        return judged_dict(self, [c.to_dict() for c in self.changes])


Key = tuple[str, str, int]  # nodeid, name, occurrence of that pair within one run


def _keyed(results: Sequence[Mapping[str, Any]]) -> dict[Key, Mapping[str, Any]]:
    seen: dict[tuple[str, str], int] = {}
    out: dict[Key, Mapping[str, Any]] = {}
    for r in results:
        if r.get("kind"):  # accuracy gates and same-run comparisons have no samples
            continue
        pair = (str(r.get("nodeid", "")), str(r.get("name", "")))
        out[(*pair, seen.get(pair, 0))] = r
        seen[pair] = seen.get(pair, 0) + 1
    return out


def compare_rounds(
    rounds: Sequence[Mapping[str, Sequence[Mapping[str, Any]]]],
    *,
    threshold: float,
    confidence: float = 0.95,
) -> list[ABResult]:
    """Every measurement of the suite, from the rounds' results: ``[{"base": [result, ...],
    "head": [result, ...]}, ...]`` (each list a run's ``results``, `Result.to_dict` form).

    A test's own ``slo(regression=...)`` wins over `threshold`; the error ``1 - confidence``
    is split evenly among the percentiles it targets (p50 and p99 when none).
    """
    keyed = [{side: _keyed(list(r.get(side) or [])) for side in (BASE, HEAD)} for r in rounds]
    order: dict[Key, Mapping[str, Any]] = {}
    for r in keyed:
        for side in (HEAD, BASE):
            for key, result in r[side].items():
                order.setdefault(key, result)
    out = []
    for key, first in order.items():
        t = threshold_for(first, threshold)
        named = bool(first.get("named"))
        base_runs = sum(key in r[BASE] for r in keyed)
        head_runs = sum(key in r[HEAD] for r in keyed)
        if not base_runs or not head_runs:
            side = "base" if not base_runs else "head"
            note = f"measured on one side only: the {side} never ran it (new, renamed or gone)"
            out.append(ABResult(key[0], key[1], named, t, confidence, note=note))
            continue
        quantiles = quantiles_for(first.get("spec"))
        alpha = (1 - confidence) / len(quantiles)
        pairs = [
            (
                list(r[BASE][key].get("samples_ns") or []) if key in r[BASE] else [],
                list(r[HEAD][key].get("samples_ns") or []) if key in r[HEAD] else [],
            )
            for r in keyed
        ]
        changes = tuple(
            paired_change(pairs, q, threshold=t, alpha=alpha, metric=m) for m, q in quantiles
        )
        out.append(ABResult(key[0], key[1], named, t, confidence, changes))
    return out
