"""The accuracy gate: did an optimisation cost accuracy? A pure function on predicted labels.

    >>> v = evaluate_accuracy(candidate=[1, 0, 1, 1], reference=[1, 0, 1, 0],
    ...                       truth=[1, 0, 1, 0], max_drop=0.5)
    >>> v.decision.value, round(v.targets[2].observed, 2)    # rows: accuracy x2, drop
    ('INCONCLUSIVE', 0.25)

Rows, all shares in [0, 1]:

* ``reference_accuracy`` and ``accuracy`` (the candidate's): estimates with two-sided
  Clopper-Pearson (exact binomial) intervals at `confidence`; information, not gates;
* ``drop`` = reference accuracy - candidate accuracy on the *same* examples: with ``b``
  examples only the reference gets right and ``c`` only the candidate, ``drop = (b - c) / n``.
  Its bounds are Newcombe's score interval for paired proportions (method 10, Stat Med 1998):
  Wilson bounds of both accuracies combined with the observed correlation of the pairs, so the
  pairing narrows the interval as it should (the two models err on mostly the same examples).
  Each bound is one-sided at `confidence`. PASS when the upper bound <= ``max_drop``, FAIL
  when the lower bound is over;
* ``agreement`` (when ``min_agreement`` is set): share of identical labels, PASS when its lower
  bound >= ``min_agreement``, FAIL when its upper bound is under.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import Any

from .stats import clopper_pearson
from .verdict import Decision, TargetResult, Verdict


def wilson(k: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score bounds for a share ``k / n`` at normal quantile `z`."""
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_difference_bounds(
    both: int, only_first: int, only_second: int, neither: int, alpha: float
) -> tuple[float, float]:
    """One-sided ``(lower, upper)`` bounds, each at ``1 - alpha``, for ``p1 - p2`` where
    ``p1 = (both + only_first) / n`` and ``p2 = (both + only_second) / n`` on paired data
    (Newcombe 1998, method 10)."""
    a, b, c, d = both, only_first, only_second, neither
    n = a + b + c + d
    z = NormalDist().inv_cdf(1 - alpha)
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson(a + b, n, z)
    l2, u2 = wilson(a + c, n, z)
    denom = math.sqrt((a + b) * (c + d) * (a + c) * (b + d))
    phi = (a * d - b * c) / denom if denom else 0.0
    delta = p1 - p2
    lower = delta - math.sqrt(
        max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    )
    upper = delta + math.sqrt(
        max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    )
    return max(-1.0, lower), min(1.0, upper)


def evaluate_accuracy(
    candidate: Sequence[Any],
    reference: Sequence[Any],
    truth: Sequence[Any],
    *,
    max_drop: float,
    min_agreement: float | None = None,
    confidence: float = 0.95,
) -> Verdict:
    """Decide whether `candidate` loses at most `max_drop` accuracy against `reference`."""
    n = len(truth)
    if not (len(candidate) == len(reference) == n) or n == 0:
        raise ValueError(
            f"need equally long, non-empty label lists; got candidate={len(candidate)}, "
            f"reference={len(reference)}, labels={n}"
        )
    alpha = 1 - confidence
    cand_ok = [c == t for c, t in zip(candidate, truth, strict=True)]
    ref_ok = [r == t for r, t in zip(reference, truth, strict=True)]
    b = sum(r and not c for r, c in zip(ref_ok, cand_ok, strict=True))
    c_ = sum(c and not r for r, c in zip(ref_ok, cand_ok, strict=True))
    rows: list[TargetResult] = []

    for metric, hits in (("reference_accuracy", sum(ref_ok)), ("accuracy", sum(cand_ok))):
        lo, hi = clopper_pearson(hits, n, alpha / 2)
        rows.append(
            TargetResult(
                metric, 0.0, hits / n, lo, hi, n, Decision.PASS, note="information: no target"
            )
        )

    both = sum(r and c for r, c in zip(ref_ok, cand_ok, strict=True))
    lo, hi = paired_difference_bounds(both, b, c_, n - both - b - c_, alpha)
    drop = (b - c_) / n
    decision = (
        Decision.PASS
        if hi <= max_drop
        else Decision.FAIL
        if lo > max_drop
        else Decision.INCONCLUSIVE
    )
    rows.append(
        TargetResult(
            "drop",
            max_drop,
            drop,
            lo,
            hi,
            n,
            decision,
            note=f"{b} examples only the reference got right, {c_} only the candidate",
        )
    )

    if min_agreement is not None:
        same = sum(x == y for x, y in zip(candidate, reference, strict=True))
        lo, hi = clopper_pearson(same, n, alpha)
        decision = (
            Decision.PASS
            if lo >= min_agreement
            else Decision.FAIL
            if hi < min_agreement
            else Decision.INCONCLUSIVE
        )
        rows.append(TargetResult("agreement", min_agreement, same / n, lo, hi, n, decision))

    gates = [r.decision for r in rows if r.metric in ("drop", "agreement")]
    overall = (
        Decision.FAIL
        if Decision.FAIL in gates
        else Decision.INCONCLUSIVE
        if Decision.INCONCLUSIVE in gates
        else Decision.PASS
    )
    return Verdict(overall, tuple(rows), confidence, alpha, 1)
