"""The A/B gate's statistics (`core.ab`): the run order, Student's t, the per-round paired
bounds and their error rates by simulation with drift between rounds, and the pooling of a
suite's results."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_latency.core.ab import (
    BASE,
    HEAD,
    compare_rounds,
    detectable_at,
    paired_change,
    schedule,
    t_quantile,
)
from pytest_latency.core.regression import (
    IMPROVEMENT,
    INCONCLUSIVE,
    NO_CHANGE,
    REGRESSION,
    compare_quantile,
)


def test_rounds_alternate_which_side_runs_first() -> None:
    order = schedule(5)
    assert order == [(BASE, HEAD), (HEAD, BASE), (BASE, HEAD), (HEAD, BASE), (BASE, HEAD)]
    runs = [side for pair in order for side in pair]
    assert "".join("A" if s == BASE else "B" for s in runs[:6]) == "ABBAAB"


@pytest.mark.parametrize("rounds", [2, 51, 0])
def test_a_round_count_out_of_range_names_the_valid_ones(rounds: int) -> None:
    with pytest.raises(ValueError, match=rf"rounds={rounds} is not valid; expected .* 3 to 50"):
        schedule(rounds)


def test_t_quantiles_match_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 7, 10, 49):
        for p in (0.5, 0.9, 0.95, 0.975, 0.9875, 0.999):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9, abs=1e-12)


def _lognormal(rng: np.random.Generator, shape: tuple[int, ...], scale: Any = 1.0) -> Any:
    return np.rint(rng.lognormal(np.log(1e5), 0.4, shape) * scale).astype(np.int64)


def _drifting_rounds(
    rng: np.random.Generator, ratio: float, rounds: int = 5, n: int = 1000
) -> list[tuple[Any, Any]]:
    """Per round, one drift factor for both sides (the runner getting busier or quieter,
    +/-30 %), and a smaller one between the two halves of the round (+/-3 %)."""
    out = []
    for _ in range(rounds):
        drift = math.exp(rng.normal(0, 0.3))
        within = math.exp(rng.normal(0, 0.03))
        base = _lognormal(rng, (n,), drift)
        head = _lognormal(rng, (n,), drift * within * ratio)
        out.append((base, head))
    return out


def test_drift_between_rounds_keeps_wrong_regressions_within_alpha() -> None:
    """Coverage by simulation: the truth sits on the band's edge (head 5 % slower, threshold
    5 %), the hardest case for a wrong `regression`; rounds drift by +/-30 % and the halves of
    a round by +/-3 %. A one-sided bound at alpha = 2.5 % may be wrong at most 2.5 % of the
    time (plus Monte Carlo slack); the saved-run rule, fed one round of each side from
    different moments, calls the same truth a regression far more often."""
    rng = np.random.default_rng(15)
    runs, alpha = 600, 0.025
    wrong = {"p50": 0, "p99": 0}
    saved_wrong = 0
    for _ in range(runs):
        rounds = _drifting_rounds(rng, 1.05)
        for metric, q in (("p50", 0.5), ("p99", 0.99)):
            change = paired_change(rounds, q, threshold=0.05, alpha=alpha, metric=metric)
            wrong[metric] += change.classification == REGRESSION
        old, new = np.sort(rounds[0][0]), np.sort(rounds[1][1])  # different moments
        saved = compare_quantile(old, new, 0.99, threshold=0.05, alpha=alpha)
        saved_wrong += saved.classification == REGRESSION
    limit = alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)  # 4.4 % at 600 runs
    assert wrong["p50"] / runs <= limit, wrong
    assert wrong["p99"] / runs <= limit, wrong
    assert saved_wrong / runs > 0.15, saved_wrong  # drift alone reads as a regression


def test_a_true_20_percent_slowdown_is_caught_through_the_drift_3_times_in_4() -> None:
    """Power at 5 rounds of 1,000 samples a side: the p99's own sampling error (about 5 %
    a side) and the +/-3 % within rounds are what the interval must cover."""
    rng = np.random.default_rng(16)
    calls = [
        paired_change(_drifting_rounds(rng, 1.20), 0.99, threshold=0.05, alpha=0.025)
        for _ in range(100)
    ]
    assert sum(c.classification == REGRESSION for c in calls) >= 75


def test_no_change_and_improvement_are_called_when_the_rounds_agree() -> None:
    rng = np.random.default_rng(17)
    same = paired_change(_drifting_rounds(rng, 1.0, n=4000), 0.5, threshold=0.05, alpha=0.025)
    assert same.classification == NO_CHANGE, same
    faster = paired_change(_drifting_rounds(rng, 0.7), 0.5, threshold=0.05, alpha=0.025)
    assert faster.classification == IMPROVEMENT, faster
    assert faster.upper is not None
    assert faster.upper < 1 / 1.05


def test_bounds_are_the_t_interval_of_the_per_round_log_ratios() -> None:
    ratios = [1.10, 1.20, 1.05, 1.15]
    rounds = [([100_000] * 10, [round(100_000 * r)] * 10) for r in ratios]
    change = paired_change(rounds, 0.99, threshold=0.0, alpha=0.05)
    logs = np.log(ratios)
    half = t_quantile(0.95, 3) * logs.std(ddof=1) / 2
    assert change.ratio == pytest.approx(math.exp(logs.mean()))
    assert change.lower == pytest.approx(math.exp(logs.mean() - half))
    assert change.upper == pytest.approx(math.exp(logs.mean() + half))
    assert change.rounds == 4
    assert change.n_base == change.n_head == 40
    assert change.detectable == pytest.approx(detectable_at(logs.std(ddof=1), 4, 0.05))


def test_fewer_than_three_complete_rounds_give_no_bounds() -> None:
    rounds = [([100] * 5, [200] * 5), ([100] * 5, []), ([100] * 5, [200] * 5)]
    change = paired_change(rounds, 0.5, threshold=0.05, alpha=0.025)
    assert change.classification == INCONCLUSIVE
    assert change.lower is None
    assert change.upper is None
    assert change.rounds == 2
    assert change.ratio == pytest.approx(2.0)


def test_the_noise_floor_shrinks_with_rounds() -> None:
    floors = [detectable_at(0.05, r, 0.025) for r in (3, 5, 8, 20)]
    assert floors == sorted(floors, reverse=True)
    # 5 rounds: (t(0.975, 4) + t(0.9, 4)) * 0.05 / sqrt(5)
    assert floors[1] == pytest.approx(math.expm1((2.7764 + 1.5332) * 0.05 / 5**0.5), rel=1e-3)


def _result(nodeid: str, samples: Any, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "nodeid": nodeid,
        "name": "f",
        "named": False,
        "spec": spec or {},
        "samples_ns": np.asarray(samples).tolist(),
    }


def test_a_suite_is_compared_test_by_test_with_its_own_targets_and_threshold() -> None:
    rng = np.random.default_rng(18)
    rounds = []
    for _ in range(4):
        drift = math.exp(rng.normal(0, 0.2))
        base_fast = _lognormal(rng, (800,), drift)
        base_slow = _lognormal(rng, (800,), drift)
        rounds.append(
            {
                BASE: [
                    _result("t.py::fast", base_fast, {"p99_ms": 10}),
                    _result("t.py::slow", base_slow),
                    _result("t.py::gone", base_slow),
                ],
                HEAD: [
                    _result("t.py::fast", _lognormal(rng, (800,), drift), {"p99_ms": 10}),
                    _result(
                        "t.py::slow", _lognormal(rng, (800,), drift * 1.3), {"regression": 0.5}
                    ),
                ],
            }
        )
    by_id = {r.nodeid: r for r in compare_rounds(rounds, threshold=0.05)}
    assert [c.metric for c in by_id["t.py::fast"].changes] == ["p99"]
    assert by_id["t.py::fast"].changes[0].alpha == pytest.approx(0.05)
    slow = by_id["t.py::slow"]
    assert [c.metric for c in slow.changes] == ["p50", "p99"]
    assert slow.threshold == 0.5  # the head's slo(regression=0.5) wins, as in compare
    assert slow.classification != REGRESSION  # 30 % is inside its own 50 % band
    assert by_id["t.py::gone"].classification == INCONCLUSIVE
    assert "the head never ran it" in by_id["t.py::gone"].note
    assert by_id["t.py::gone"].to_dict()["summary"].startswith("INCONCLUSIVE: measured on")


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    drifts=st.lists(st.floats(0.25, 4.0), min_size=3, max_size=8),
    q=st.sampled_from([0.5, 0.9, 0.99]),
)
def test_a_drift_shared_by_both_sides_of_a_round_never_changes_the_answer(
    seed: int, drifts: list[float], q: float
) -> None:
    """Scaling a round's two sides by one factor (the runner slower for that round) leaves
    the per-round ratios, hence the ratio, bounds and classification, as they were; swapping
    the sides inverts them."""
    rng = np.random.default_rng(seed)
    rounds = [(_lognormal(rng, (300,)), _lognormal(rng, (300,), 1.1)) for _ in drifts]
    drifted = [
        (np.rint(b * d).astype(np.int64), np.rint(h * d).astype(np.int64))
        for (b, h), d in zip(rounds, drifts, strict=True)
    ]
    plain = paired_change(rounds, q, threshold=0.05, alpha=0.025)
    moved = paired_change(drifted, q, threshold=0.05, alpha=0.025)
    assert moved.ratio == pytest.approx(plain.ratio, rel=1e-4)
    assert moved.lower == pytest.approx(plain.lower, rel=1e-3)
    assert moved.upper == pytest.approx(plain.upper, rel=1e-3)
    swapped = paired_change([(h, b) for b, h in rounds], q, threshold=0.05, alpha=0.025)
    assert swapped.ratio == pytest.approx(1 / plain.ratio)
    assert swapped.lower == pytest.approx(1 / plain.upper)
    assert swapped.upper == pytest.approx(1 / plain.lower)
    assert plain.lower <= plain.ratio <= plain.upper


def test_a_noise_floor_past_1000_percent_says_only_that_nothing_is_detectable() -> None:
    from pytest_latency.report.ab import percent

    assert percent(0.0951) == "9.5%"
    assert percent(106.5) == ">1000%"
    assert percent(None) == "-"
