"""Session options: the INCONCLUSIVE policy, validation of every option at configure time, ini
fallback and the report header that makes a run reproducible."""

from __future__ import annotations

import pytest

# 50 samples can never bound p99 from above (0.99**50 > alpha), and a cheap call is far under
# 50 ms, so the verdict is INCONCLUSIVE every time -- no timing luck involved.
INCONCLUSIVE = """
import pytest

@pytest.mark.slo(p99_ms=50, max_samples=50, warmup=5)
def test_undecided(latency):
    latency(sorted, [3, 2, 1])
"""


def test_inconclusive_verdict_fails_by_default_with_guidance(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(INCONCLUSIVE)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*INCONCLUSIVE: p99 * ms vs 50 ms: bounds [[]*, -[]] straddle the target at 95% "
            "confidence with n=50; about * samples in all would decide it",
            "*metric*target*estimate*lower*upper*n*margin*verdict",
            "*p99*<= 50.00 ms*50*INCONCLUSIVE",
            "*n=50 timed samples, stopped: max_samples",
            "*(--latency-inconclusive=fail; 'warn' or 'pass' relax it)",
        ]
    )


@pytest.mark.parametrize("max_samples", [20, 40])
def test_inconclusive_guidance_for_a_small_budget_says_more_samples_would_decide(
    pytester: pytest.Pytester, max_samples: int
) -> None:
    """Zero exceedances in a few samples is far from p99's 1 %: more samples *would* decide."""
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.slo(p99_ms=50, max_samples={max_samples}, warmup=5)
        def test_undecided(latency):
            latency(sorted, [3, 2, 1])
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*INCONCLUSIVE: p99 *n={max_samples}; about * samples in all*"])
    result.stdout.no_fnmatch_line("*more samples will not decide it*")


def test_time_budget_ends_an_undecided_measurement_as_inconclusive(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import time
        import pytest

        # p99 needs ~350 samples; 5 ms calls give fewer than 100 in half a second.
        @pytest.mark.slo(p99_ms=50, max_time_s=0.5, warmup=2)
        def test_budget(latency):
            latency(time.sleep, 0.005)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*INCONCLUSIVE: p99 *", "*timed samples, stopped: max_time"])


def test_inconclusive_warn_passes_with_a_pytest_latency_warning(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(INCONCLUSIVE)
    result = pytester.runpytest("--latency-inconclusive=warn")
    # Two: the verdict's, and the planner's at collection (50 samples cannot decide a p99).
    result.assert_outcomes(passed=1, warnings=2)
    result.stdout.fnmatch_lines(
        [
            "*warnings summary*",
            "*PytestLatencyWarning: INCONCLUSIVE: p99 *",
            "*metric*target*estimate*lower*upper*n*margin*verdict",
        ]
    )


def test_inconclusive_pass_passes_silently(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(INCONCLUSIVE)
    result = pytester.runpytest("--latency-inconclusive=pass")
    # No warning about the verdict; only the planner's, at collection.
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*cannot be decided as planned*"])
    result.stdout.no_fnmatch_line("*PytestLatencyWarning: INCONCLUSIVE*")
    result.stdout.fnmatch_lines(["*test_undecided*INCONCLUSIVE"])  # still reported


def test_ini_latency_inconclusive_sets_the_policy(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nlatency_inconclusive = warn\n")
    pytester.makepyfile(INCONCLUSIVE)
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, warnings=2)  # the verdict's and the planner's
    result.stdout.fnmatch_lines(["*inconclusive=warn*", "*PytestLatencyWarning: INCONCLUSIVE*"])


def test_command_line_option_overrides_the_ini_value(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nlatency_inconclusive = pass\n")
    pytester.makepyfile(INCONCLUSIVE)
    result = pytester.runpytest("--latency-inconclusive=fail")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*inconclusive=fail*"])


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "--latency-inconclusive=maybe",
            "'maybe' is not a valid --latency-inconclusive / ini latency_inconclusive. "
            "Valid: fail, warn, pass",
        ),
        (
            "--latency-confidence=2",
            "'2' is not a valid --latency-confidence / ini latency_confidence. "
            "Valid: a number strictly between 0 and 1, e.g. 0.95",
        ),
        (
            "--latency-warmup=-3",
            "'-3' is not a valid --latency-warmup / ini latency_warmup. "
            "Valid: a count from 0 to 1,000,000 or 'auto'",
        ),
        (
            "--latency-warmup=1000000000000",
            "'1000000000000' is not a valid --latency-warmup / ini latency_warmup. "
            "Valid: a count from 0 to 1,000,000 or 'auto'",
        ),
        (
            "--latency-gc=sometimes",
            "'sometimes' is not a valid --latency-gc / ini latency_gc. Valid: off, on",
        ),
        (
            "--latency-max-time=0",
            "'0' is not a valid --latency-max-time / ini latency_max_time_s. "
            "Valid: seconds > 0, at most 86,400 (one day), e.g. 30",
        ),
        *(
            (
                f"--latency-max-time={value}",
                f"'{value}' is not a valid --latency-max-time / ini latency_max_time_s. "
                "Valid: seconds > 0, at most 86,400 (one day), e.g. 30",
            )
            for value in ("inf", "nan", "100000")
        ),
        (
            "--latency-confidence=nan",
            "'nan' is not a valid --latency-confidence / ini latency_confidence. "
            "Valid: a number strictly between 0 and 1, e.g. 0.95",
        ),
        (
            "--latency-seed=abc",
            "'abc' is not a valid --latency-seed / ini latency_seed. Valid: an integer >= 0",
        ),
        (
            "--latency-seed=-1",
            "'-1' is not a valid --latency-seed / ini latency_seed. Valid: an integer >= 0",
        ),
    ],
)
def test_bad_option_value_is_a_usage_error_naming_the_value_and_valid_ones(
    pytester: pytest.Pytester, option: str, message: str
) -> None:
    pytester.makepyfile("def test_never(): raise AssertionError('must not run')")
    result = pytester.runpytest(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    result.stdout.no_fnmatch_line("*test_never*")


def test_bad_ini_value_is_a_usage_error_too(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nlatency_confidence = 95\n")
    pytester.makepyfile("def test_never(): raise AssertionError('must not run')")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: '95' is not a valid --latency-confidence / ini *"])


def test_report_header_shows_the_effective_settings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "latency: confidence=0.95 (per target, spent over sequential looks), warmup=auto, "
            "gc=off in timed blocks, inconclusive=fail, max_time_s=30, seed=*, "
            "timer=perf_counter_ns (resolution * s*)",
        ]
    )


def test_report_header_shows_settings_given_as_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(
        "--latency-seed=123",
        "--latency-confidence=0.99",
        "--latency-warmup=7",
        "--latency-gc=on",
        "--latency-inconclusive=warn",
        "--latency-max-time=4",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "latency: confidence=0.99 *, warmup=7, gc=on in timed blocks, inconclusive=warn, "
            "max_time_s=4, seed=123, timer=perf_counter_ns*",
        ]
    )


def test_open_loop_schedule_is_seeded_from_the_session_seed_and_the_test_id(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_seed="""
        import zlib
        import pytest

        @pytest.mark.slo(p50_ms=50, rate_rps=500, warmup=10)
        def test_poisson(latency):
            result = latency(sorted, [3, 2, 1])
            assert result.spec.arrivals == "poisson"
            assert result.spec.seed == 123 ^ zlib.crc32(b"test_seed.py::test_poisson")
        """
    )
    pytester.runpytest("--latency-seed=123").assert_outcomes(passed=1)


def test_session_settings_become_the_defaults_of_each_measurement(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slo(p50_ms=50)
        def test_defaults(latency):
            result = latency(sorted, [3, 2, 1])
            assert result.spec.confidence == 0.9
            assert result.spec.warmup == 4 and result.samples.warmup.calls == 4
            assert result.spec.max_time_s == 3
            assert result.verdict.confidence == 0.9

        @pytest.mark.slo(p50_ms=50, confidence=0.8, warmup=2)
        def test_marker_wins(latency):
            result = latency(sorted, [3, 2, 1])
            assert result.spec.confidence == 0.8 and result.spec.warmup == 2
        """
    )
    result = pytester.runpytest(
        "--latency-confidence=0.9", "--latency-warmup=4", "--latency-max-time=3"
    )
    result.assert_outcomes(passed=2)
