"""What a measured SLO does to its test: pass, fail with the table, xfail, error; what the
`latency` fixture returns and accepts."""

from __future__ import annotations

import pytest


def test_slo_met_by_a_cheap_callable_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slo(p99_ms=50, warmup=5)
        def test_sort(latency):
            latency(sorted, [3, 2, 1])
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_missed_slo_fails_with_summary_then_table_then_context(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import time
        import pytest

        @pytest.mark.slo(p50_ms=0.5, warmup=5, min_samples=20)
        def test_sleep(latency):
            latency(time.sleep, 0.002)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*FAIL: p50 is over 0.5 ms with 95% confidence (lower bound *, estimate *, n=*)",
            "",
            "*metric*target*estimate*lower*upper*n*margin*verdict",
            "*------*",
            "*p50*<= 0.5 ms*FAIL",
            "",
            "*bounds: one-sided, each 95% over 1 sequential look(s)*stopped: decided",
            "*serial; * rps; warm-up 5 calls (count); cold start * ms",
        ]
    )


def test_strict_xfail_over_a_missed_slo_is_xfailed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time
        import pytest

        @pytest.mark.xfail(strict=True, reason="known slow")
        @pytest.mark.slo(p50_ms=0.5, warmup=5, min_samples=20)
        def test_sleep(latency):
            latency(time.sleep, 0.002)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(xfailed=1)
    result.stdout.fnmatch_lines(["*test_sleep*FAIL (xfailed)*"])


def test_strict_xfail_over_a_met_slo_fails_as_xpass_strict(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.xfail(strict=True, reason="should be slow")
        @pytest.mark.slo(p50_ms=50, warmup=5)
        def test_sort(latency):
            latency(sorted, [3, 2, 1])
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*XPASS(strict)*should be slow*"])


def test_result_carries_the_verdict_and_int64_nanosecond_samples(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import numpy as np
        import pytest

        @pytest.mark.slo(p99_ms=50, warmup=5)
        def test_sort(latency):
            result = latency(sorted, [3, 2, 1])
            assert result.verdict.passed is True
            assert result.samples_ns.dtype == np.int64
            assert result.n == len(result.samples_ns) >= 100
            assert (result.samples_ns > 0).all()
            pct = result.percentiles_ms
            assert 0 < pct["p50"] <= pct["p99"] <= pct["max"]
            assert result.percentile_ms(0.99) == pct["p99"]
            assert {t.metric for t in result.verdict.targets} == {"p99"}
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_slo_test_that_never_calls_latency_errors_saying_nothing_was_measured(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slo(p99_ms=50)
        def test_forgot(latency):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_forgot*",
            "*test_forgot is marked @pytest.mark.slo but never called latency(fn, ...): "
            "nothing was measured, so its SLO was not checked",
        ]
    )


@pytest.mark.parametrize(
    ("exit_call", "outcome"),
    [("pytest.skip('no GPU here')", "skipped"), ("pytest.xfail('known slow')", "xfailed")],
)
def test_slo_test_that_skips_before_measuring_is_only_skipped_not_an_error(
    pytester: pytest.Pytester, exit_call: str, outcome: str
) -> None:
    # e.g. pytest.importorskip("onnxruntime") or a missing GPU, inside the test body
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.slo(p99_ms=50)
        def test_gpu(latency):
            {exit_call}
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(**{outcome: 1})
    result.stdout.no_fnmatch_line("*never called latency*")


def test_callable_that_raises_fails_with_the_error_rate_row_and_first_traceback(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        def broken():
            raise ConnectionRefusedError("backend at 10.0.0.7 is down")

        @pytest.mark.slo(p50_ms=50, warmup=5)
        def test_broken(latency):
            latency(broken)
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*FAIL: * of * calls raised (error rate 100.0%, allowed 0.0%); the first traceback "
            "is below",
            "*metric*target*estimate*lower*upper*n*margin*verdict",
            "*error_rate*<= 0.00%*100.00%*FAIL",
            "*first error:",
            "*Traceback (most recent call last):",
            "*in broken*",
            "*ConnectionRefusedError: backend at 10.0.0.7 is down",
        ]
    )


def test_error_rate_within_max_error_rate_passes_the_error_gate(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import itertools
        import pytest

        calls = itertools.count(1)

        def flaky():
            if next(calls) % 2 == 0:
                raise TimeoutError("every other call")

        # Cold start is call 1, the one warm-up call is call 2: timed calls begin on a success,
        # so errors never outnumber successes at the end of a block.
        @pytest.mark.slo(p50_ms=50, max_error_rate=0.5, warmup=1)
        def test_flaky(latency):
            result = latency(flaky)
            assert result.errors > 0 and result.n > 0
            assert result.errors / (result.n + result.errors) <= 0.5
            rows = {t.metric: t.decision.value for t in result.verdict.targets}
            assert rows == {"p50": "PASS", "error_rate": "PASS"}
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_latency_without_a_marker_measures_against_the_slo_argument(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        from pytest_latency.core import Spec

        def test_dict(latency):
            result = latency(sorted, [3, 2, 1], slo={"p50_ms": 50, "warmup": 5})
            assert result.verdict.passed and result.spec.p50_ms == 50

        def test_spec(latency):
            result = latency(sorted, [3, 2, 1], slo=Spec(p50_ms=50, warmup=5))
            assert result.verdict.passed and result.spec.p50_ms == 50
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_latency_without_marker_or_slo_argument_raises_a_clear_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        def test_no_slo(latency):
            latency(sorted, [3, 2, 1])
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*SpecError: test_*::test_no_slo: no SLO to measure against; mark the test "
            "@pytest.mark.slo(p99_ms=...) or call latency(fn, slo=Spec(p99_ms=...))",
        ]
    )


def test_slo_argument_overrides_the_marker_keywords(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time
        import pytest

        # The marker's p50_ms=0.5 would fail a 2 ms call; slo= relaxes it for this call only.
        @pytest.mark.slo(p50_ms=0.5, warmup=3, min_samples=20)
        def test_relaxed(latency):
            result = latency(time.sleep, 0.002, slo={"p50_ms": 50})
            assert result.spec.p50_ms == 50
            assert result.spec.warmup == 3  # kept from the marker
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_positional_and_keyword_arguments_reach_the_callable_unchanged(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest

        seen = set()

        def handler(path, limit=None, *, method):
            seen.add((path, limit, method))

        @pytest.mark.slo(p50_ms=50, warmup=2)
        def test_args(latency):
            latency(handler, "/items", 10, method="GET")
            assert seen == {("/items", 10, "GET")}
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
