"""Comparing with a saved run: load it, compare each recorded result with its counterpart,
and fail a test on a regression. Plugin glue only; the statistics are in `core.regression`.

    pytest -m slo --latency-save=main.json                        # on the main branch
    pytest -m slo --latency-compare=main.json \\
                  --latency-fail-on-regression=10% --latency-markdown=latency.md

The saved run is loaded and its environment checked in ``pytest_configure``, in every process
(xdist workers compare their own results), so a bad path or a refused environment is a usage
error before anything is measured.
"""

from __future__ import annotations

from typing import Any

import pytest

from .keys import SAVED_RUN_KEY, SEEN_KEY, SETTINGS_KEY, SavedRunState, Settings


def load(config: pytest.Config, settings: Settings) -> SavedRunState:
    """Load the saved run and compare environments; refuse it under ``--latency-compare-strict``."""
    # numpy underneath: loaded only when a run is compared, not for `pytest --help`.
    from ..core.env import fingerprint
    from ..core.regression import SavedRun, describe_differences, env_differences
    from ..report.json_report import load_report

    assert settings.compare_path is not None
    try:
        report = load_report(settings.compare_path)
    except ValueError as exc:
        raise pytest.UsageError(f"--latency-compare: {exc}") from None
    saved = SavedRun.from_report(report)
    environment = fingerprint(config.rootpath)
    diffs = env_differences(saved.environment, environment)
    if diffs and settings.strict:
        raise pytest.UsageError(
            f"--latency-compare-strict: this run's environment differs from the saved run "
            f"{settings.compare_path} in {', '.join(d[0] for d in diffs)} "
            f"({describe_differences(diffs)}); latencies from different machines or stacks "
            "are not comparable. Save a new run on this environment, or drop "
            "--latency-compare-strict to compare anyway (the differences are then reported)"
        )
    return SavedRunState(settings.compare_path, saved, environment, diffs)


def configure(config: pytest.Config) -> None:
    settings = config.stash[SETTINGS_KEY]
    if settings.compare_path:
        config.stash[SAVED_RUN_KEY] = load(config, settings)


def check_regression(config: pytest.Config, item: pytest.Item, data: dict[str, Any]) -> None:
    """Compare one recorded result with the saved run (``data["regression"]``), and fail the
    test on a regression under ``--latency-fail-on-regression``.

    Called when the fixture records the result, so the failure belongs to the test itself. A
    result whose own verdict also fails gets one message with both tables.
    """
    state = config.stash.get(SAVED_RUN_KEY, None)
    if state is None or data.get("kind"):
        return
    # A saved run is loaded, so numpy is too; the renderers load only when one is compared.
    from ..core.regression import REGRESSION, compare_result, describe_differences
    from ..report.changes import change_table
    from ..report.table import failure_message

    settings = config.stash[SETTINGS_KEY]
    key = (data.get("nodeid"), data.get("name"))
    seen = item.stash.setdefault(SEEN_KEY, [])
    before = state.run.counterpart(data, seen.count(key))  # the n-th of that name
    seen.append(key)
    change = compare_result(before, data, threshold=settings.threshold)
    data["regression"] = change.to_dict()
    prefix = f"latency[{data['name']}]" if data.get("named") else "latency"
    item.user_properties.append((f"{prefix}.regression", change.classification))
    if change.classification != REGRESSION or not settings.fail_on_regression:
        return
    lines = [change.summary(), "", *change_table([data["regression"]]), ""]
    lines.append(
        f"saved run: {state.path}; threshold +/-{change.threshold:.0%} "
        "(--latency-fail-on-regression; a test's slo(regression=...) overrides it); bounds "
        f"one-sided {round(change.confidence * 100, 2):g}% each, error split over the "
        "compared percentiles"
    )
    if state.differences:
        lines.append(
            "warning: the environment differs from the saved run's: "
            + describe_differences(state.differences)
        )
    decision = data.get("decision")
    if decision == "FAIL" or (decision == "INCONCLUSIVE" and settings.inconclusive == "fail"):
        lines += ["", "The SLO itself did not pass either:", failure_message(data)]
    pytest.fail("\n".join(lines), pytrace=False)
