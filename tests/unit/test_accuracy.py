"""The accuracy gate's statistics: exact binomial bounds and paired-difference bounds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pytest_latency.core.accuracy import (
    clopper_pearson,
    evaluate_accuracy,
    paired_difference_bounds,
)
from pytest_latency.core.spec import AccuracySpec, SpecError
from pytest_latency.core.verdict import Decision


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 20), (1700, 2000), (2000, 2000), (50, 51)])
def test_clopper_pearson_matches_the_beta_quantiles(k: int, n: int) -> None:
    lo, hi = clopper_pearson(k, n, 0.025)
    assert lo == pytest.approx(0.0 if k == 0 else stats.beta.ppf(0.025, k, n - k + 1), abs=1e-9)
    assert hi == pytest.approx(1.0 if k == n else stats.beta.ppf(0.975, k + 1, n - k), abs=1e-9)


@pytest.mark.parametrize(
    ("probs", "drop"),
    [
        ((0.82, 0.02, 0.01, 0.15), 0.01),  # typical INT8 vs FP32: few discordant pairs
        ((0.70, 0.06, 0.04, 0.20), 0.02),
        ((0.84, 0.003, 0.003, 0.154), 0.0),
    ],
)
def test_paired_drop_bounds_cover_the_true_drop_at_the_stated_level(
    probs: tuple[float, float, float, float], drop: float
) -> None:
    rng = np.random.default_rng(11)
    sims, upper_ok, lower_ok = 3000, 0, 0
    for a, b, c, d in rng.multinomial(2000, probs, size=sims):
        lo, hi = paired_difference_bounds(int(a), int(b), int(c), int(d), 0.05)
        upper_ok += hi >= drop - 1e-12
        lower_ok += lo <= drop + 1e-12
    assert upper_ok / sims >= 0.93
    assert lower_ok / sims >= 0.93


def test_pairing_makes_the_drop_bounds_narrower_than_treating_the_samples_as_independent() -> None:
    lo, hi = paired_difference_bounds(1640, 20, 10, 330, 0.05)
    # Independent Wilson-style interval for 83.0 % vs 82.5 % on 2000 each is about +-2 points.
    assert hi - lo < 0.02


def _labels(
    rng: np.random.Generator, n: int, flip: float
) -> tuple[list[int], list[int], list[int]]:
    truth = rng.integers(0, 2, n)
    ref = np.where(rng.random(n) < 0.85, truth, 1 - truth)
    cand = np.where(rng.random(n) < flip, 1 - ref, ref)
    return cand.tolist(), ref.tolist(), truth.tolist()


def test_a_faithful_candidate_passes_and_a_damaged_one_fails() -> None:
    rng = np.random.default_rng(5)
    ok = evaluate_accuracy(*_labels(rng, 2000, 0.003), max_drop=0.01, min_agreement=0.98)
    assert ok.decision is Decision.PASS
    bad = evaluate_accuracy(*_labels(rng, 2000, 0.15), max_drop=0.01)
    assert bad.decision is Decision.FAIL
    assert bad.summary().startswith("FAIL: accuracy drop")


def test_mismatched_lengths_are_refused_with_the_counts() -> None:
    with pytest.raises(ValueError, match="candidate=2, reference=3, labels=3"):
        evaluate_accuracy([1, 0], [1, 0, 1], [1, 0, 1], max_drop=0.01)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_drop": 2}, "max_drop=2 is not valid"),
        ({"max_drop": -0.1}, "max_drop=-0.1 is not valid"),
        ({"min_agreement": 0}, "min_agreement=0 is not valid"),
        ({"confidence": 1}, "confidence=1 is not valid"),
        ({"max_dorp": 0.01}, "unknown keyword.*'max_dorp'.*valid: confidence, max_drop"),
    ],
)
def test_accuracy_marker_keywords_are_validated(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        AccuracySpec.from_kwargs(**kwargs)
