"""``--latency-html=PATH``: the HTML report, drawn from the run's report so that
``pytest-latency plot run.json -o report.html`` later draws the same page. With
``--latency-compare=PATH``, the saved run's measurements are overlaid and each result's change
against it (recorded by `saved_run`) is tabulated.
"""

from __future__ import annotations

from typing import Any

import pytest

from ...report.plots import MissingDependency, require_matplotlib
from ..collector import gathered, run_report
from ..keys import SAVED_RUN_KEY, SETTINGS_KEY


def check(config: pytest.Config) -> None:
    """At configure time: a usage error now, not after the run, when matplotlib is missing."""
    if not config.stash[SETTINGS_KEY].html_path:
        return
    try:
        require_matplotlib("--latency-html")
    except MissingDependency as exc:
        raise pytest.UsageError(str(exc)) from None


def saved_run_of(config: pytest.Config) -> tuple[dict[str, Any] | None, str | None, list[str]]:
    """The ``--latency-compare`` run as the report dict the page overlays, its path, and
    notes for the page (the environment differences `saved_run` found). It was loaded and
    checked in ``pytest_configure``; it is reused, not read again."""
    state = config.stash.get(SAVED_RUN_KEY, None)
    if state is None:
        return None, None, []
    report = {"results": list(state.run.results), "environment": dict(state.run.environment)}
    notes = []
    if state.differences:
        # core.regression imports numpy; a saved run is loaded, so it is loaded already.
        from ...core.regression import describe_differences

        notes.append(
            "warning: the environment differs from the saved run's: "
            + describe_differences(state.differences)
        )
    return report, state.path, notes


def write(config: pytest.Config) -> None:
    path = config.stash[SETTINGS_KEY].html_path
    if not path:
        return
    # report.html draws with matplotlib (imported only when a page is written).
    from ...report.html import write_html

    saved, saved_path, notes = saved_run_of(config)
    write_html(path, run_report(config), saved, saved_name=saved_path, notes=notes)
    gathered(config).written["html"] = f"latency HTML report written to {path}"
