"""``evaluate(samples, spec, look) -> Verdict``: one row per target (percentiles, stage
budgets, throughput, error rate, goodput, the cold start), each decided on its confidence
bounds at the look's error budget (``verdict`` explains the sequential looks), plus the
problems that fail a measurement whatever its percentiles (hung calls, a load generator
that fell behind).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from .hang import grace_ns
from .samples import CENSORED_UPPER_NS, IntArray, Samples
from .spec import PERCENTILE_KEYS, Spec
from .stats import clopper_pearson, quantile, quantile_bounds, samples_to_decide
from .verdict import NS_PER_MS, Decision, TargetResult, Verdict, look_alpha


def _ms(ns: int | None) -> float | None:
    return None if ns is None else ns / NS_PER_MS


def evaluate(samples: Samples, spec: Spec, look: int = 1, *, fixed: bool = False) -> Verdict:
    """Decide `spec` on `samples` at sequential look `look` (see the module docstring), or,
    with `fixed`, on a sample that will never grow (measured elsewhere, handed in whole):
    then the whole ``1 - confidence`` is spent at once."""
    confidence = spec.confidence if spec.confidence is not None else 0.95
    alpha = (1 - confidence) if fixed else look_alpha(confidence, look)
    rows: list[TargetResult] = []
    n = samples.n
    total = n + samples.censored
    # Censored requests (unfinished) sit at their lower bound in `ordered` and at "unknown,
    # larger than anything" in `upper`: lower bounds come from the first, upper bounds from
    # the second, so an unfinished request can only push a decision towards FAIL.
    ordered = samples.sorted_ns() if total else None
    upper = samples.sorted_upper_ns() if samples.censored else None
    censored_note = (
        f"{samples.censored} unfinished request(s) counted at their lower bound"
        if samples.censored
        else ""
    )

    for key, q in PERCENTILE_KEYS.items():
        target_ms = getattr(spec, key)
        if target_ms is None:
            continue
        rows.append(
            _percentile_row(
                key.removesuffix("_ms"),
                q,
                target_ms,
                ordered,
                alpha,
                confidence,
                look,
                note=censored_note if total else "no samples",
                upper=upper,
            )
        )

    missing_stages = []
    for stage_name, budget_ms in (spec.budget or {}).items():
        spans = samples.stages.get(stage_name)
        if spans is None or not len(spans):
            missing_stages.append(stage_name)
            continue
        rows.append(
            _percentile_row(
                f"{stage_name}.p99", 0.99, budget_ms, np.sort(spans), alpha, confidence, look
            )
        )

    if spec.max_ms is not None:
        observed = _ms(int(ordered[-1])) if ordered is not None else None
        over = observed is not None and observed > spec.max_ms
        ok = observed is not None and not over and not samples.censored
        rows.append(
            TargetResult(
                "max",
                spec.max_ms,
                observed,
                None,
                None,
                total,
                Decision.PASS if ok else (Decision.FAIL if over else Decision.INCONCLUSIVE),
                note="sample maximum: more samples can only raise it"
                + (f"; {censored_note}" if censored_note else ""),
            )
        )
    if spec.cold_start_ms is not None:
        cold = _ms(samples.cold_start_ns)
        rows.append(
            TargetResult(
                "cold_start",
                spec.cold_start_ms,
                cold,
                None,
                None,
                1 if cold is not None else 0,
                Decision.INCONCLUSIVE
                if cold is None
                else Decision.PASS
                if cold <= spec.cold_start_ms
                else Decision.FAIL,
                note="first call, measured once",
            )
        )
    if spec.min_rps is not None:
        rps = samples.throughput_rps
        rows.append(
            TargetResult(
                "rps",
                spec.min_rps,
                rps,
                None,
                None,
                n,
                Decision.INCONCLUSIVE
                if rps is None
                else Decision.PASS
                if rps >= spec.min_rps
                else Decision.FAIL,
                note="successful calls per second of timed wall time",
            )
        )
    total = n + samples.errors
    if samples.errors or spec.max_error_rate:
        rate = samples.error_rate
        ok = rate <= spec.max_error_rate
        rows.append(
            TargetResult(
                "error_rate",
                spec.max_error_rate,
                rate,
                None,
                None,
                total,
                Decision.PASS if ok else Decision.FAIL,
                note=f"{samples.errors} of {total} calls raised",
            )
        )

    if spec.goodput is not None and spec.goodput_ms is not None:
        rows.append(_goodput_row(samples, spec.goodput, spec.goodput_ms, alpha, confidence, look))

    problems = _hung_problems(samples, spec) + _load_problems(samples)
    if missing_stages and n:
        problems += (
            f"the budget names stage(s) {', '.join(map(repr, missing_stages))} but no spans "
            f"were recorded for them in {n} calls: wrap that code in "
            "pytest_latency.stage(NAME) or report it with record_stage(NAME, ns); recorded: "
            f"{', '.join(map(repr, sorted(samples.stages))) or 'none'}",
        )
    decisions = {r.decision for r in rows}
    if problems or Decision.FAIL in decisions:
        decision = Decision.FAIL
    elif Decision.INCONCLUSIVE in decisions:
        decision = Decision.INCONCLUSIVE
    else:
        decision = Decision.PASS
    return Verdict(decision, tuple(rows), confidence, alpha, look, problems)


# An open-loop generator that starts requests at less than this share of the offered rate is
# measuring a lighter load than asked for.
MIN_ACHIEVED_SHARE = 0.9


def _percentile_row(
    metric: str,
    q: float,
    target_ms: float,
    ordered: IntArray | None,
    alpha: float,
    confidence: float,
    look: int,
    note: str = "",
    upper: IntArray | None = None,
) -> TargetResult:
    """PASS / FAIL / INCONCLUSIVE for one quantile from sorted samples.

    `upper`, when given, is the same samples with censored ones at `CENSORED_UPPER_NS`: the
    upper bound comes from it (an unfinished request may be arbitrarily slow)."""
    if ordered is None or not len(ordered):
        return TargetResult(
            metric, target_ms, None, None, None, 0, Decision.INCONCLUSIVE, quantile=q, note=note
        )
    n = len(ordered)
    target_ns = round(target_ms * NS_PER_MS)
    lo, hi = quantile_bounds(ordered, q, alpha)
    if upper is not None:
        hi = quantile_bounds(upper, q, alpha)[1]
        if hi is not None and hi >= CENSORED_UPPER_NS:
            hi = None  # unbounded: the bound falls on an unfinished request
    if hi is not None and hi <= target_ns:
        decision = Decision.PASS
    elif lo is not None and lo > target_ns:
        decision = Decision.FAIL
    else:
        decision = Decision.INCONCLUSIVE
    over = int(n - (ordered if upper is None else upper).searchsorted(target_ns, side="right"))
    return TargetResult(
        metric,
        target_ms,
        _ms(quantile(ordered, q)),
        _ms(lo),
        _ms(hi),
        n,
        decision,
        quantile=q,
        exceedances=over,
        note=note,
        samples_to_decide=(
            samples_to_decide(n, over, q, look_alpha(confidence, look + 1))
            if decision is Decision.INCONCLUSIVE
            else None
        ),
    )


def _goodput_row(
    samples: Samples, share: float, bound_ms: float, alpha: float, confidence: float, look: int
) -> TargetResult:
    """The share of calls that answered right within `bound_ms`, against `share`.

    Every call counts: a wrong answer, an error, one slower than the bound, and an unfinished
    one are not good. The lower bound counts an unfinished request that has waited less than
    the bound as not good, the upper bound as good (it may still answer in time), so neither
    guess can push a verdict the wrong way. Bounds: one-sided Clopper-Pearson at `alpha`."""
    bound_ns = round(bound_ms * NS_PER_MS)
    fast = int(np.count_nonzero(samples.latencies_ns <= bound_ns))
    fast_wrong = int(np.count_nonzero(samples.wrong_ns <= bound_ns))
    good = fast - fast_wrong
    pending = int(np.count_nonzero(samples.censored_ns <= bound_ns))
    total = samples.n + samples.errors + samples.censored
    note = (
        f"{good} of {total} calls right within {bound_ms:g} ms; {samples.wrong} wrong "
        f"answer(s), {samples.n - fast} slower than {bound_ms:g} ms, {samples.errors} "
        f"error(s), {samples.censored} unfinished"
    )
    if total == 0:
        return TargetResult("goodput", share, None, None, None, 0, Decision.INCONCLUSIVE, note=note)
    lower = clopper_pearson(good, total, alpha)[0]
    upper = clopper_pearson(good + pending, total, alpha)[1]
    observed = good / total
    if lower >= share:
        decision = Decision.PASS
    elif upper < share:
        decision = Decision.FAIL
    else:
        decision = Decision.INCONCLUSIVE
    return TargetResult(
        "goodput",
        share,
        observed,
        lower,
        upper,
        total,
        decision,
        exceedances=total - good,
        note=note,
        samples_to_decide=(
            _calls_to_decide(observed, share, look_alpha(confidence, look + 1), total)
            if decision is Decision.INCONCLUSIVE
            else None
        ),
    )


def _calls_to_decide(observed: float, share: float, alpha: float, n: int) -> int | None:
    """About how many calls in all would put a share bound past `share`, if the observed
    share held (normal approximation: the estimate is all it is for)."""
    gap = abs(observed - share)
    if gap == 0:
        return None
    z = NormalDist().inv_cdf(1 - alpha)
    p = min(max(observed, 1 / (n + 1)), 1 - 1 / (n + 1))  # 0 or 1 observed: a variance > 0
    return max(n + 1, math.ceil(z * z * p * (1 - p) / gap**2))


def _hung_problems(samples: Samples, spec: Spec) -> tuple[str, ...]:
    if not samples.hung:
        return ()
    call = f" of {samples.call_name}" if samples.call_name else ""
    return (
        f"{samples.hung} call(s){call} did not return: the longest had run "
        f"{samples.hung_waited_ns / 1e9:.1f} s when the measurement gave up on it (max_time_s "
        f"{spec.max_time_s or 30:g} s plus a grace of {grace_ns(spec) / 1e9:g} s). A call that "
        "hangs fails the test whatever the percentiles say; give the client a timeout, or "
        "find what it waits on",
    )


def _load_problems(samples: Samples) -> tuple[str, ...]:
    load = samples.load
    if load.mode != "open" or not load.offered_rps or load.achieved_rps is None:
        return ()
    if load.achieved_rps < MIN_ACHIEVED_SHARE * load.offered_rps:
        return (
            f"the load generator fell behind: offered {load.offered_rps:g} rps, started "
            f"{load.achieved_rps:.1f} rps ({load.late} of {load.issued} requests started late, "
            f"{load.not_issued} never issued); the system saw a lighter load than the SLO "
            "names. Lower rate_rps, make the callable cheaper to issue (async), or run the "
            "generator on an idle machine",
        )
    return ()
