"""CI merge gating: --latency-save, --latency-compare, --latency-fail-on-regression,
--latency-compare-strict and --latency-markdown.

A real regression would need a slower callable and a noisy wait; instead the saved run is a
real saved run whose samples are then scaled down (the saved run "was" 10x faster), which makes
this run a regression far beyond the run-to-run noise of a shared machine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

FAST = """
import pytest

@pytest.mark.slo(p50_ms=50, warmup=5)
def test_fast(latency):
    latency(sorted, [3, 2, 1])
"""

TWO = (
    FAST
    + """
@pytest.mark.slo(p50_ms=50, warmup=5, regression=10.0)
def test_lenient(latency):
    latency(sorted, [3, 2, 1])
"""
)


def save_run(
    pytester: pytest.Pytester,
    scale: float,
    env: dict[str, Any] | None = None,
    scales: dict[str, float] | None = None,
) -> Path:
    """Run once with --latency-save, then scale the saved samples (`scales` by test name) and
    patch the environment."""
    result = pytester.runpytest("--latency-save=saved.json")
    assert result.ret == 0, result.stdout.str()
    report = json.loads((pytester.path / "saved.json").read_text())
    for r in report["results"]:
        factor = (scales or {}).get(r["nodeid"].split("::")[-1], scale)
        r["samples_ns"] = [max(1, round(s * factor)) for s in r["samples_ns"]]
    report["environment"].update(env or {})
    path = pytester.path / "base.json"
    path.write_text(json.dumps(report))
    return path


def test_help_lists_the_ci_options_with_their_formats(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "*--latency-save=PATH*",
            "*--latency-compare=PATH*",
            "*--latency-fail-on-regression=PCT*",
            "*e.g. 10%*",
            "*--latency-markdown=PATH*",
            "*--latency-compare-strict*",
        ]
    )


def test_save_writes_the_json_document_with_raw_samples_beside_latency_json(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_fast=FAST)
    pytester.mkdir("out")
    result = pytester.runpytest("--latency-save=out/base.json", "--latency-json=run.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["latency run saved to out/base.json"])
    saved = json.loads((pytester.path / "out" / "base.json").read_text())
    run = json.loads((pytester.path / "run.json").read_text())
    assert saved["schema"] == run["schema"] == "pytest-latency/1"
    assert saved["results"] == run["results"]
    assert len(saved["results"][0]["samples_ns"]) >= 100
    assert saved["environment"]["cpu_model"]


def test_regression_beyond_the_threshold_fails_the_test_with_the_change_table(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_fast=FAST)
    save_run(pytester, scale=1 / 10)
    result = pytester.runpytest("--latency-compare=base.json", "--latency-fail-on-regression=10%")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*REGRESSION: p50 is slower than the saved run by more than 10% with 95% "
            "confidence (ratio *x, bounds ?*x, *x?; p50 * ms -> * ms; n=* vs *)",
            "*test *percentile*before ms*after ms*ratio ?bounds?*threshold*change",
            "*test_fast.py::test_fast*p50*x ?*?*+/-10%*regression",
            "*saved run: base.json; threshold +/-10%*",
            "*= latency regressions vs base.json: 1 regression =*",
            "test_fast.py::test_fast*p50*regression",
            "legend: ratio = after / before*",
        ]
    )


def test_without_fail_on_regression_a_regression_is_reported_but_passes(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_fast=FAST)
    save_run(pytester, scale=1 / 10)
    result = pytester.runpytest("--latency-compare=base.json")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "latency saved run: compare=base.json (threshold 10%, fail on regression: no, "
            "strict environment: no)",
            "*= latency regressions vs base.json: 1 regression =*",
        ]
    )


def test_the_markers_regression_keyword_overrides_the_threshold(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_two=TWO)
    save_run(pytester, scale=1 / 10, scales={"test_lenient": 1 / 3})
    result = pytester.runpytest(
        "--latency-compare=base.json", "--latency-fail-on-regression=10%", "-v"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*test_two.py::test_fast FAILED*", "*test_two.py::test_lenient PASSED*"]
    )
    result.stdout.fnmatch_lines(["test_two.py::test_lenient*p50*+/-1000%*no change"])


def test_a_test_missing_from_the_saved_run_is_new_and_never_fails(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_fast=FAST)
    save_run(pytester, scale=1.0)
    pytester.makepyfile(
        test_other="""
        import pytest

        @pytest.mark.slo(p50_ms=50, warmup=5)
        def test_added(latency):
            latency(sorted, [3, 2, 1])
        """
    )
    result = pytester.runpytest(
        "test_other.py", "--latency-compare=base.json", "--latency-fail-on-regression=10%"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*= latency regressions vs base.json: 1 new =*",
            "test_other.py::test_added*-*new",
            "1 saved run result(s) not measured in this run",
        ]
    )


def test_the_junit_properties_carry_the_classification(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_fast=FAST)
    save_run(pytester, scale=1 / 10)
    result = pytester.runpytest("--latency-compare=base.json", "--junit-xml=junit.xml")
    result.assert_outcomes(passed=1)
    assert (
        'name="latency.regression" value="regression"' in (pytester.path / "junit.xml").read_text()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--latency-compare=base.json", "--latency-fail-on-regression=0.1"],
            "*'0.1' is not a valid --latency-fail-on-regression*Valid: a percentage with a % "
            "sign*e.g. 10%*",
        ),
        (
            ["--latency-fail-on-regression=10%"],
            "*--latency-fail-on-regression needs --latency-compare=PATH*",
        ),
        (["--latency-compare-strict"], "*--latency-compare-strict needs --latency-compare*"),
        (["--latency-compare=nowhere.json"], "*--latency-compare: nowhere.json: no such file*"),
    ],
)
def test_bad_ci_options_are_usage_errors_before_anything_runs(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    (pytester.path / "base.json").write_text(json.dumps({"schema": "pytest-latency/1"}))
    pytester.makepyfile("def test_never(): raise AssertionError('must not run')")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_a_differing_environment_is_reported_and_refused_when_strict(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_fast=FAST)
    save_run(pytester, scale=1.0, env={"cpu_model": "Imaginary CPU 9000", "cpu_count": 512})
    lenient = pytester.runpytest("--latency-compare=base.json")
    lenient.assert_outcomes(passed=1)
    lenient.stdout.fnmatch_lines(
        ["warning: the environment differs from the saved run's*cpu_model 'Imaginary CPU 9000' ->*"]
    )
    strict = pytester.runpytest("--latency-compare=base.json", "--latency-compare-strict")
    assert strict.ret == pytest.ExitCode.USAGE_ERROR
    strict.stderr.fnmatch_lines(
        [
            "*--latency-compare-strict: this run's environment differs from the saved run "
            "base.json in cpu_model, cpu_count (*"
        ]
    )


def test_markdown_summary_lists_regressions_first_and_appends_to_the_step_summary(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(test_fast=FAST)
    save_run(pytester, scale=1 / 10)
    step = pytester.path / "step_summary.md"
    step.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    result = pytester.runpytest("--latency-compare=base.json", "--latency-markdown=sum.md")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "latency markdown written to sum.md",
            "latency markdown appended to $GITHUB_STEP_SUMMARY",
        ]
    )
    text = (pytester.path / "sum.md").read_text()
    headings = [line for line in text.splitlines() if line.startswith("###")]
    assert headings == ["### Regressions vs `base.json`", "### Latency verdicts (1 PASS)"]
    assert "| `test_fast.py::test_fast` | p50 |" in text
    assert "| `test_fast.py::test_fast` | p50 ≤ 50 ms |" in text
    assert text.rstrip().splitlines()[-1].startswith("Environment: ")
    assert step.read_text() == "earlier step\n\n" + text


def test_markdown_without_a_saved_run_has_the_verdicts_and_environment_only(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    pytester.makepyfile(test_fast=FAST)
    result = pytester.runpytest("--latency-markdown=sum.md")
    result.assert_outcomes(passed=1)
    text = (pytester.path / "sum.md").read_text()
    assert "Regressions" not in text
    assert "### Latency verdicts (1 PASS)" in text
    assert "Environment: " in text
