"""A bad ``@pytest.mark.slo`` is a collection error that names the test, the bad value and what
is valid -- and nothing is measured. Also: marker registration, selection and merging."""

from __future__ import annotations

import pytest

# The inner test body leaves a trace if it ever runs; a collection error must prevent that.
BODY = """
import pathlib
import time

import pytest


def touch_and_sleep():
    pathlib.Path("ran.txt").write_text("measured")
    time.sleep(0.002)


{marker}
def test_target(latency):
    latency(touch_and_sleep)
"""


def run_with_marker(pytester: pytest.Pytester, marker: str) -> pytest.RunResult:
    pytester.makepyfile(test_bad=BODY.format(marker=marker))
    return pytester.runpytest()


def assert_collection_error(
    pytester: pytest.Pytester, result: pytest.RunResult, detail: str
) -> None:
    """One collection error: the test's node id, then `detail` (an fnmatch pattern)."""
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting test_bad.py*",
            f"test_bad.py::test_target: invalid @pytest.mark.slo: {detail}",
        ]
    )
    assert not (pytester.path / "ran.txt").exists(), "the callable ran despite a bad marker"


def test_unknown_marker_keyword_is_a_collection_error_naming_the_test_and_valid_keywords(
    pytester: pytest.Pytester,
) -> None:
    result = run_with_marker(pytester, "@pytest.mark.slo(p98_ms=10)")
    assert_collection_error(
        pytester,
        result,
        "unknown keyword 'p98_ms'; valid: *max_error_rate*p50_ms*p99_ms*",
    )


@pytest.mark.parametrize("value", ["-1", "0"])
def test_non_positive_target_is_a_collection_error(pytester: pytest.Pytester, value: str) -> None:
    result = run_with_marker(pytester, f"@pytest.mark.slo(p99_ms={value})")
    assert_collection_error(
        pytester, result, f"p99_ms={value} is not valid; expected a positive number*"
    )


@pytest.mark.parametrize("value", ["0", "1", "1.5"])
def test_confidence_outside_the_open_unit_interval_is_a_collection_error(
    pytester: pytest.Pytester, value: str
) -> None:
    result = run_with_marker(pytester, f"@pytest.mark.slo(p50_ms=50, confidence={value})")
    assert_collection_error(
        pytester,
        result,
        f"confidence={value} is not valid; expected a number strictly between 0 and 1*",
    )


def test_rate_rps_with_concurrency_is_a_collection_error_saying_to_choose_one(
    pytester: pytest.Pytester,
) -> None:
    result = run_with_marker(pytester, "@pytest.mark.slo(p50_ms=50, rate_rps=100, concurrency=4)")
    assert_collection_error(
        pytester, result, "rate_rps=100 with concurrency=4: choose one; rate_rps is an open loop*"
    )


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ("p50_ms=10, p99_ms=5", "percentiles out of order: p50_ms=10 > p99_ms=5*"),
        ("p99_ms=10, max_ms=5", "percentiles out of order: p99_ms=10 > max_ms=5*"),
    ],
)
def test_percentile_targets_out_of_order_are_a_collection_error(
    pytester: pytest.Pytester, keywords: str, message: str
) -> None:
    result = run_with_marker(pytester, f"@pytest.mark.slo({keywords})")
    assert_collection_error(pytester, result, message)


@pytest.mark.parametrize("keywords", ["confidence=0.9, warmup=5", "gc='on'"])
def test_marker_without_any_target_is_a_collection_error_listing_the_targets(
    pytester: pytest.Pytester, keywords: str
) -> None:
    result = run_with_marker(pytester, f"@pytest.mark.slo({keywords})")
    assert_collection_error(
        pytester, result, "no target given; set at least one of p50_ms, *, min_rps*"
    )


def test_positional_marker_arguments_are_a_collection_error_suggesting_keywords(
    pytester: pytest.Pytester,
) -> None:
    result = run_with_marker(pytester, "@pytest.mark.slo(10)")
    assert_collection_error(
        pytester,
        result,
        "positional arguments (10,) are not accepted; use keywords, e.g. "
        "@pytest.mark.slo(p99_ms=10)*",
    )


def test_arrivals_without_rate_rps_is_a_collection_error(pytester: pytest.Pytester) -> None:
    result = run_with_marker(pytester, "@pytest.mark.slo(p50_ms=50, arrivals='constant')")
    assert_collection_error(pytester, result, "arrivals='constant' needs rate_rps*")


@pytest.mark.parametrize("value", ["-1", "'sometimes'", "2.5"])
def test_bad_warmup_is_a_collection_error_naming_count_or_auto(
    pytester: pytest.Pytester, value: str
) -> None:
    result = run_with_marker(pytester, f"@pytest.mark.slo(p50_ms=50, warmup={value})")
    assert_collection_error(
        pytester,
        result,
        f"warmup={value} is not valid; expected a count from 0 to 1,000,000 or 'auto'*",
    )


def test_slo_marked_test_without_the_latency_fixture_is_a_collection_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_bad="""
        import pathlib
        import pytest

        @pytest.mark.slo(p50_ms=50)
        def test_target():
            pathlib.Path("ran.txt").write_text("ran")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting test_bad.py*",
            "*test_bad.py::test_target: marked @pytest.mark.slo but does not use the `latency` "
            "fixture; add it to the test's arguments*",
        ]
    )
    assert not (pytester.path / "ran.txt").exists()


def test_slo_marker_added_by_a_collection_hook_to_a_test_without_latency_is_not_ignored(
    pytester: pytest.Pytester,
) -> None:
    """A conftest that marks a whole directory must not leave SLOs silently unchecked."""
    pytester.makeconftest(
        """
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                item.add_marker(pytest.mark.slo(p99_ms=10))
        """
    )
    pytester.makepyfile(test_bad="def test_target(): pass")
    result = pytester.runpytest()
    assert result.ret != 0
    assert result.parseoutcomes().get("passed", 0) == 0
    result.stdout.fnmatch_lines(["*test_target*does not use the `latency` fixture*"])


def test_bad_keyword_in_a_class_level_pytestmark_names_each_method(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_bad="""
        import pytest

        class TestApi:
            pytestmark = pytest.mark.slo(p99_ms=-5)

            def test_get(self, latency):
                latency(sorted, [3, 2, 1])
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*test_bad.py::TestApi::test_get: invalid @pytest.mark.slo: p99_ms=-5 is not valid*"]
    )


def test_function_marker_overrides_class_pytestmark_and_keeps_its_other_keywords(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_merge="""
        import time
        import pytest

        class TestApi:
            # Alone, p50_ms=0.5 would fail a 2 ms call; the function's p50_ms=50 must win.
            pytestmark = pytest.mark.slo(p50_ms=0.5, max_time_s=7, warmup=3)

            @pytest.mark.slo(p50_ms=50, min_samples=20)
            def test_get(self, latency):
                result = latency(time.sleep, 0.002)
                assert result.spec.p50_ms == 50
                assert result.spec.max_time_s == 7
                assert result.spec.warmup == 3
                assert result.samples.warmup.calls == 3
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)


SELECTION = """
import pytest

@pytest.mark.slo(p50_ms=50, warmup=5)
def test_measured(latency):
    latency(sorted, [3, 2, 1])

def test_plain():
    pass
"""


def test_dash_m_slo_selects_only_slo_marked_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sel=SELECTION)
    result = pytester.runpytest("-m", "slo", "-v")
    result.assert_outcomes(passed=1, deselected=1)
    result.stdout.fnmatch_lines(["*test_sel.py::test_measured PASSED*"])
    result.stdout.no_fnmatch_line("*test_plain*")


def test_slo_marker_is_registered_so_strict_markers_accepts_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_sel=SELECTION)
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(passed=2)


def test_markers_listing_shows_the_slo_signature_with_an_example(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest("--markers")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.slo(p50_ms=None, *p99_ms=None, *max_error_rate=0, goodput=None, "
            "goodput_ms=None, confidence=0.95, warmup='auto', *concurrency=1, rate_rps=None, "
            "arrivals='poisson', gc='off', budget=None, regression=None): a latency SLO *Example: "
            "@pytest.mark.slo(p99_ms=10, p50_ms=4) def test_fast(latency): latency(fn)",
        ]
    )


def test_a_bare_marker_only_tags_the_test_for_selection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.slo

        def test_tagged_without_measuring():
            assert True

        def test_bare_tag_gives_no_slo_to_measure(latency):
            latency(sorted, [2, 1])
        """
    )
    result = pytester.runpytest("-m", "slo")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*no SLO to measure against; mark the test*"])
