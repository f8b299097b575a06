"""Regression checks against a saved run: the threshold format, the classification rule, the
matching of results, the environment comparison, and the error rates by simulation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pytest_latency.core.regression import (
    IMPROVEMENT,
    INCONCLUSIVE,
    NEW,
    NO_CHANGE,
    REGRESSION,
    SavedRun,
    classify,
    compare_result,
    env_differences,
    parse_threshold,
    quantiles_for,
)
from pytest_latency.core.spec import Spec, SpecError


def _result(samples: Any, spec: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "nodeid": "test_x.py::test_f",
        "name": "f",
        "named": False,
        "confidence": 0.95,
        "spec": spec or {},
        "samples_ns": np.asarray(samples, dtype=np.int64).tolist(),
        **extra,
    }


def _lognormal(rng: np.random.Generator, n: int, scale: float = 1.0) -> np.ndarray[Any, Any]:
    return np.rint(rng.lognormal(np.log(2e6), 0.5, n) * scale).astype(np.int64)


@pytest.mark.parametrize(("raw", "expected"), [("10%", 0.10), (" 2.5% ", 0.025), ("0%", 0.0)])
def test_threshold_is_a_percentage_with_a_percent_sign(raw: str, expected: float) -> None:
    assert parse_threshold(raw) == pytest.approx(expected)


@pytest.mark.parametrize("raw", ["0.1", "10", "ten%", "-5%", "nan%", "2000%", ""])
def test_bad_threshold_names_the_value_and_the_valid_format(raw: str) -> None:
    with pytest.raises(ValueError, match=rf"{raw!r} is not a valid threshold.*e\.g\. 10%"):
        parse_threshold(raw)


@pytest.mark.parametrize(
    ("lower", "upper", "expected"),
    [
        (1.11, 1.5, REGRESSION),  # entirely above 1 + t
        (1.10, 1.5, INCONCLUSIVE),  # touches the band's edge: not above it
        (0.5, 0.90, IMPROVEMENT),  # entirely below 1 / (1 + t) = 0.909
        (0.92, 1.09, NO_CHANGE),  # inside the band
        (1 / 1.1, 1.1, NO_CHANGE),  # the band is closed
        (0.95, 1.2, INCONCLUSIVE),  # straddles the upper edge
        (None, 1.05, INCONCLUSIVE),  # no lower bound: could be anything below
        (1.2, None, REGRESSION),  # no upper bound, yet surely slower
    ],
)
def test_classification_compares_the_ratio_interval_with_the_band(
    lower: float | None, upper: float | None, expected: str
) -> None:
    assert classify(lower, upper, 0.10) == expected


def test_marker_keyword_regression_is_a_validated_share() -> None:
    assert Spec.from_kwargs(p99_ms=10, regression=0.05).regression == 0.05
    with pytest.raises(SpecError, match=r"regression='5%' is not valid.*e\.g\. 0\.05"):
        Spec.from_kwargs(p99_ms=10, regression="5%")
    with pytest.raises(SpecError, match=r"regression=-0\.1 is not valid"):
        Spec.from_kwargs(p99_ms=10, regression=-0.1)


def test_targeted_percentiles_are_compared_else_p50_and_p99() -> None:
    assert quantiles_for({"p95_ms": 5, "p999_ms": 9}) == (("p95", 0.95), ("p999", 0.999))
    assert quantiles_for({"max_ms": 5}) == (("p50", 0.5), ("p99", 0.99))


def test_a_clear_slowdown_is_a_regression_with_ratio_and_bounds() -> None:
    rng = np.random.default_rng(3)
    before, after = _result(_lognormal(rng, 2000)), _result(_lognormal(rng, 2000, 1.3))
    change = compare_result(before, after, threshold=0.10)
    assert change.classification == REGRESSION
    assert [c.metric for c in change.changes] == ["p50", "p99"]
    p50 = change.changes[0]
    assert p50.lower is not None
    assert p50.upper is not None
    assert 1.1 < p50.lower < p50.ratio < p50.upper  # type: ignore[operator]
    assert p50.alpha == pytest.approx(0.025)  # 5 % split over the two percentiles
    assert change.summary().startswith("REGRESSION: p50 is slower than the saved run by more than")


def test_the_tests_own_regression_keyword_overrides_the_session_threshold() -> None:
    rng = np.random.default_rng(4)
    before = _result(_lognormal(rng, 3000))
    after = _result(_lognormal(rng, 3000, 1.3), spec={"p50_ms": 10, "regression": 0.5})
    change = compare_result(before, after, threshold=0.10)
    assert change.threshold == 0.5
    assert change.classification == NO_CHANGE  # 30 % is inside a +/-50 % band


def test_a_result_without_counterpart_is_new_and_one_without_samples_inconclusive() -> None:
    after = _result([1_000_000] * 400)
    assert compare_result(None, after).classification == NEW
    empty = compare_result(_result([]), after)
    assert empty.classification == INCONCLUSIVE
    assert "no raw samples" in empty.summary()


def test_saved_run_pairs_results_by_nodeid_and_name_in_order() -> None:
    saved = [
        _result([1_000_000] * 500, name="a"),
        _result([2_000_000] * 500, name="a"),
        _result([1_000_000] * 500, nodeid="test_x.py::test_gone"),
        {"kind": "accuracy", "nodeid": "test_x.py::test_f", "name": "accuracy"},
    ]
    saved_run = SavedRun(saved, {})
    now = [_result([1_000_000] * 500, name="a"), _result([2_000_000] * 500, name="a")]
    now.append(_result([1_000_000] * 500, name="b"))
    changes = saved_run.compare(now)
    assert [c.classification for c in changes] == [NO_CHANGE, NO_CHANGE, NEW]
    assert saved_run.missing(now) == ["test_x.py::test_gone (f)"]


def test_environment_differences_name_the_fields_and_skip_test_tooling() -> None:
    before = {"cpu_model": "A", "python": "3.11.7", "packages": {"numpy": "1.26", "pytest": "8"}}
    after = {"cpu_model": "B", "python": "3.11.7", "packages": {"numpy": "2.0", "pytest": "9"}}
    assert env_differences(before, after) == [
        ("cpu_model", "A", "B"),
        ("packages.numpy", "1.26", "2.0"),
    ]
    assert env_differences(before, before) == []


def _wrong_regression_rate(scale: float, threshold: float, trials: int, n: int) -> float:
    rng = np.random.default_rng(20261129)
    wrong = 0
    for _ in range(trials):
        before, after = _result(_lognormal(rng, n)), _result(_lognormal(rng, n, scale))
        wrong += compare_result(before, after, threshold=threshold).classification == REGRESSION
    return wrong / trials


def test_no_true_change_is_called_a_regression_at_most_alpha_of_the_time() -> None:
    # The hardest truth for the rule: the ratio sits exactly on the band's edge (1 + t), and
    # the zero-threshold case, where any noise upwards could look like a slowdown.
    on_the_edge = _wrong_regression_rate(1.10, 0.10, trials=1000, n=1000)
    no_threshold = _wrong_regression_rate(1.0, 0.0, trials=1000, n=1000)
    assert on_the_edge <= 0.05
    assert no_threshold <= 0.05
    # Measured (docs/statistics.md): about 0.2 % each; the combined bounds are conservative.
    assert on_the_edge <= 0.01
    assert no_threshold <= 0.01


def test_a_true_30_percent_slowdown_is_detected_with_1000_samples_a_side() -> None:
    rng = np.random.default_rng(7)
    found = sum(
        compare_result(
            _result(_lognormal(rng, 1000)), _result(_lognormal(rng, 1000, 1.3)), threshold=0.10
        ).classification
        == REGRESSION
        for _ in range(200)
    )
    assert found / 200 >= 0.95
