"""The planner: samples and time each target needs, before measuring; the collection-time
warning for a marker whose own budget cannot decide it; ``pytest-latency plan``."""

from __future__ import annotations

import pytest

from pytest_latency.cli import main
from pytest_latency.core.plan import plan, undecidable
from pytest_latency.core.spec import Spec
from pytest_latency.core.stats import min_samples_for_quantile
from pytest_latency.core.verdict import look_alpha


def test_the_fewest_samples_are_what_the_runners_first_look_needs() -> None:
    spec = Spec(p50_ms=4, p99_ms=10, p999_ms=30, confidence=0.99)
    rows = plan(spec)
    first_look = 1 - look_alpha(0.99, 1)
    assert [r.target for r in rows] == ["p50 <= 4 ms", "p99 <= 10 ms", "p99.9 <= 30 ms"]
    for row, q in zip(rows, (0.5, 0.99, 0.999), strict=True):
        assert row.min_samples == min_samples_for_quantile(q, first_look)
        # each sample over the target needs more samples
        assert row.min_samples < row.with_exceedances[0][1] < row.with_exceedances[1][1]


def test_time_comes_from_the_rate_or_the_call_time() -> None:
    (open_loop,) = plan(Spec(p99_ms=10, rate_rps=20))
    assert open_loop.seconds == pytest.approx(open_loop.min_samples / 20)
    (serial,) = plan(Spec(p99_ms=10), call_ms=4)
    assert serial.seconds == pytest.approx(serial.min_samples * 0.004)
    (unknown,) = plan(Spec(p99_ms=10))
    assert unknown.seconds is None
    assert unknown.fits is None


def test_a_budget_that_cannot_decide_is_named_with_the_keyword_to_change() -> None:
    (reason,) = undecidable(Spec(p999_ms=10, confidence=0.99, rate_rps=100, max_time_s=5))
    assert "p99.9 <= 10 ms needs at least 5,101 samples" in reason
    assert "max_time_s=5: raise max_time_s to" in reason
    (reason,) = undecidable(Spec(p99_ms=10, max_samples=100))
    assert "max_samples=100: raise max_samples to 348" in reason
    assert undecidable(Spec(p99_ms=10, rate_rps=20, max_time_s=60)) == []


def test_stage_budgets_are_planned_at_p99() -> None:
    rows = plan(Spec(p99_ms=100, budget={"inference": 10}))
    assert [r.target for r in rows] == ["p99 <= 100 ms", "inference.p99 <= 10 ms"]


def test_the_cli_prints_the_plan_and_exits_1_when_a_target_cannot_fit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["plan", "p99_ms=10", "rate_rps=20", "max_time_s=60"]) == 0
    out = capsys.readouterr().out
    assert "p99 <= 10 ms" in out
    assert "17.4 s" in out  # 348 samples at 20/s
    assert main(["plan", "p999_ms=25", "confidence=0.99", "rate_rps=50", "max_time_s=60"]) == 1
    assert "cannot be decided: p99.9 <= 25 ms" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "p99_ms=ten"], "p99_ms='ten' is not valid"),
        (["plan", "p99"], "'p99' is not KEY=VALUE"),
        (["plan", "p99_ms=10", "--call-ms", "0"], "--call-ms 0.0 is not valid"),
        (["plan", "max_time_s=5"], "no target given"),
        (["plan", "max_ms=5"], "no percentile target to plan"),
    ],
)
def test_bad_plan_input_is_named(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_an_undecidable_marker_warns_at_collection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.slo(p999_ms=10, confidence=0.99, rate_rps=100, max_time_s=5)
        def test_too_short(latency):
            pass

        @pytest.mark.slo(p99_ms=10, rate_rps=100, max_time_s=30)
        def test_fine(latency):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:xdist", "--collect-only")
    text = result.stdout.str()
    assert "test_too_short: cannot be decided as planned: p99.9 <= 10 ms needs" in text
    assert "test_fine: cannot be decided" not in text


def test_an_inconclusive_verdict_says_how_long_deciding_would_take() -> None:
    from pytest_latency.report.table import _to_decide

    row = {
        "n": 1822,
        "throughput_rps": 20.0,
        "stopped_by": "max_time",
        "targets": [
            {"metric": "p50", "decision": "PASS", "samples_to_decide": None},
            {"metric": "p99", "decision": "INCONCLUSIVE", "samples_to_decide": 8241},
        ],
    }
    (line,) = _to_decide(row)
    assert "about 8,241 samples in all, 321 s more at the measured 20.0 samples/s" in line
    assert "@pytest.mark.slo(max_time_s=...)" in line
    assert _to_decide({**row, "stopped_by": "decided"}) == []
    assert "max_samples=..." in _to_decide({**row, "stopped_by": "max_samples"})[0]
