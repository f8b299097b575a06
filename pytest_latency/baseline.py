"""CI merge gating: save a run, compare this run with a saved one, fail on regressions, and
write a markdown summary. Plugin glue only; the statistics are in `core.regression`.

    pytest -m slo --latency-save=baseline.json                    # on the main branch
    pytest -m slo --latency-compare=baseline.json \\
                  --latency-fail-on-regression=10% --latency-markdown=latency.md

Options resolve once in ``pytest_configure`` into a frozen `CiSettings` in the stash (option,
then ini, then default). The baseline is loaded and its environment checked there, in every
process (xdist workers compare their own results), so a bad path or a refused environment is a
usage error before anything is measured. Heavy modules (numpy) load only when an option is on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from .settings import output_path

if TYPE_CHECKING:
    from .core.regression import Baseline

# (option dest, flag, metavar, help); each has an ini value of the same name.
CI_OPTIONS: list[tuple[str, str, str, str]] = [
    (
        "latency_save",
        "--latency-save",
        "PATH",
        "save this run (the --latency-json document, raw samples included) to PATH as a "
        "baseline for --latency-compare; may be given with --latency-json",
    ),
    (
        "latency_compare",
        "--latency-compare",
        "PATH",
        "compare each result with the same test's result in a saved run (--latency-save or "
        "--latency-json) and report regressions",
    ),
    (
        "latency_fail_on_regression",
        "--latency-fail-on-regression",
        "PCT",
        "with --latency-compare: fail a test whose percentile is slower than the baseline's by "
        "more than PCT with confidence, e.g. 10% (a test's slo(regression=0.05) overrides it)",
    ),
    (
        "latency_markdown",
        "--latency-markdown",
        "PATH",
        "write a GitHub-flavoured markdown summary to PATH (also appended to "
        "$GITHUB_STEP_SUMMARY when that is set)",
    ),
]
STRICT_HELP = (
    "with --latency-compare: refuse to compare (usage error) when the environment differs "
    "from the baseline's (CPU, cores, Python, key package versions)"
)
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def add_options(parser: pytest.Parser, group: pytest.OptionGroup) -> None:
    for dest, flag, metavar, help_text in CI_OPTIONS:
        # argparse %-formats option help (not ini help): "10%" must be written "10%%" there.
        escaped = help_text.replace("%", "%%")
        group.addoption(flag, dest=dest, default=None, metavar=metavar, help=escaped)
        parser.addini(dest, help_text, default=None)
    group.addoption(
        "--latency-compare-strict",
        dest="latency_compare_strict",
        action="store_true",
        default=None,
        help=STRICT_HELP,
    )
    parser.addini("latency_compare_strict", STRICT_HELP, type="bool", default=False)


@dataclass(frozen=True)
class CiSettings:
    save_path: str | None = None
    compare_path: str | None = None
    threshold: float = 0.10
    fail_on_regression: bool = False
    strict: bool = False
    markdown_path: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.save_path or self.compare_path or self.markdown_path)

    def header(self) -> str | None:
        if not self.active:
            return None
        parts = []
        if self.compare_path:
            parts.append(
                f"compare={self.compare_path} (threshold {self.threshold:.0%}, "
                f"fail on regression: {'yes' if self.fail_on_regression else 'no'}, "
                f"strict environment: {'yes' if self.strict else 'no'})"
            )
        if self.save_path:
            parts.append(f"save={self.save_path}")
        if self.markdown_path:
            parts.append(f"markdown={self.markdown_path}")
        return "latency baseline: " + ", ".join(parts)


@dataclass
class BaselineState:
    """The loaded baseline of this process and how this run's environment differs from it."""

    path: str
    baseline: Baseline
    environment: dict[str, Any]
    differences: list[tuple[str, Any, Any]] = field(default_factory=list)


CI_KEY = pytest.StashKey[CiSettings]()
BASELINE_KEY = pytest.StashKey[BaselineState]()


def _get(config: pytest.Config, dest: str) -> Any:
    value = config.getoption(dest, None)
    return value if value is not None else (config.getini(dest) or None)


def resolve(config: pytest.Config) -> CiSettings:
    """Options, then ini, with a `pytest.UsageError` naming any bad or orphaned value."""
    compare_path = _get(config, "latency_compare")
    raw_threshold = _get(config, "latency_fail_on_regression")
    strict = bool(_get(config, "latency_compare_strict"))
    threshold = 0.10
    if raw_threshold is not None:
        from .core.regression import parse_threshold

        try:
            threshold = parse_threshold(raw_threshold)
        except ValueError:
            raise pytest.UsageError(
                f"{raw_threshold!r} is not a valid --latency-fail-on-regression / ini "
                "latency_fail_on_regression. Valid: a percentage with a % sign between 0% and "
                "1000%, e.g. 10% (the slowdown of a percentile against the baseline that fails "
                "a test)"
            ) from None
    for given, flag in (
        (raw_threshold, "--latency-fail-on-regression"),
        (strict, "--latency-compare-strict"),
    ):
        if given and not compare_path:
            raise pytest.UsageError(
                f"{flag} needs --latency-compare=PATH: the saved run (from --latency-save) "
                "to compare this run with"
            )
    return CiSettings(
        save_path=output_path(config, "latency_save", _get(config, "latency_save")),
        compare_path=compare_path,
        threshold=threshold,
        fail_on_regression=raw_threshold is not None,
        strict=strict,
        markdown_path=output_path(config, "latency_markdown", _get(config, "latency_markdown")),
    )


def load_baseline(config: pytest.Config, settings: CiSettings) -> BaselineState:
    """Load the saved run and compare environments; refuse it under ``--latency-compare-strict``."""
    from .core.env import fingerprint
    from .core.regression import Baseline, describe_differences, env_differences
    from .report.json_report import load_report

    assert settings.compare_path is not None
    try:
        report = load_report(settings.compare_path)
    except ValueError as exc:
        raise pytest.UsageError(f"--latency-compare: {exc}") from None
    baseline = Baseline.from_report(report)
    environment = fingerprint(config.rootpath)
    diffs = env_differences(baseline.environment, environment)
    if diffs and settings.strict:
        raise pytest.UsageError(
            f"--latency-compare-strict: this run's environment differs from the baseline "
            f"{settings.compare_path} in {', '.join(d[0] for d in diffs)} "
            f"({describe_differences(diffs)}); latencies from different machines or stacks "
            "are not comparable. Save a new baseline on this environment, or drop "
            "--latency-compare-strict to compare anyway (the differences are then reported)"
        )
    return BaselineState(settings.compare_path, baseline, environment, diffs)


def configure(config: pytest.Config) -> None:
    """Resolve the CI options; load the baseline; register the reporter on the controller."""
    settings = resolve(config)
    config.stash[CI_KEY] = settings
    if settings.compare_path:
        config.stash[BASELINE_KEY] = load_baseline(config, settings)
    if settings.active and getattr(config, "workerinput", None) is None:
        from .ci_report import CiReporter

        config.pluginmanager.register(CiReporter(config), "latency-ci")


def check_regression(
    config: pytest.Config, item: pytest.Item, data: dict[str, Any], inconclusive: str
) -> None:
    """Compare one recorded result with the baseline (``data["regression"]``), and fail the
    test on a regression under ``--latency-fail-on-regression``.

    Called when the fixture records the result, so the failure belongs to the test itself. A
    result whose own verdict also fails gets one message with both tables.
    """
    state = config.stash.get(BASELINE_KEY, None)
    if state is None or data.get("kind"):
        return
    from .core.regression import REGRESSION, compare_result, describe_differences
    from .report.changes import change_table
    from .report.table import failure_message

    settings = config.stash[CI_KEY]
    key = (data.get("nodeid"), data.get("name"))
    seen = item.stash.setdefault(_SEEN_KEY, [])
    before = state.baseline.counterpart(data, seen.count(key))  # the n-th of that name
    seen.append(key)
    change = compare_result(before, data, threshold=settings.threshold)
    data["regression"] = change.to_dict()
    prefix = f"latency[{data['name']}]" if data.get("named") else "latency"
    item.user_properties.append((f"{prefix}.regression", change.classification))
    if change.classification != REGRESSION or not settings.fail_on_regression:
        return
    lines = [change.summary(), "", *change_table([data["regression"]]), ""]
    lines.append(
        f"baseline: {state.path}; threshold +/-{change.threshold:.0%} "
        "(--latency-fail-on-regression; a test's slo(regression=...) overrides it); bounds "
        f"one-sided {round(change.confidence * 100, 2):g}% each, error split over the "
        "compared percentiles"
    )
    if state.differences:
        lines.append(
            "warning: the environment differs from the baseline's: "
            + describe_differences(state.differences)
        )
    decision = data.get("decision")
    if decision == "FAIL" or (decision == "INCONCLUSIVE" and inconclusive == "fail"):
        lines += ["", "The SLO itself did not pass either:", failure_message(data)]
    pytest.fail("\n".join(lines), pytrace=False)


_SEEN_KEY = pytest.StashKey[list[tuple[Any, Any]]]()


def step_summary_path() -> str | None:
    return os.environ.get(STEP_SUMMARY_ENV) or None
