"""``--latency-html=PATH``: the controller-side plugin object that writes the HTML report.

Registered in ``pytest_configure`` only when the option is on (and never on xdist workers).
It renders what `LatencyReporter` gathered, in the same form as the JSON report, so
``pytest-latency plot run.json -o report.html`` later draws the same page. With
``--latency-compare=PATH``, the baseline's measurements are overlaid and each result's change
against it (recorded by `baseline`) is tabulated.
"""

from __future__ import annotations

from typing import Any

import pytest

from .plugin import SETTINGS_KEY, LatencyReporter
from .report.plots import MissingDependency, require_matplotlib


def baseline_of(config: pytest.Config) -> tuple[dict[str, Any] | None, str | None, list[str]]:
    """The ``--latency-compare`` baseline as the report dict the page overlays, its path, and
    notes for the page (the environment differences `baseline` found). `baseline` loaded and
    checked it in ``pytest_configure``; it is reused, not read again."""
    from .baseline import BASELINE_KEY

    state = config.stash.get(BASELINE_KEY, None)
    if state is None:
        return None, None, []
    report = {
        "results": list(state.baseline.results),
        "environment": dict(state.baseline.environment),
    }
    notes = []
    if state.differences:
        from .core.regression import describe_differences

        notes.append(
            "warning: the environment differs from the baseline's: "
            + describe_differences(state.differences)
        )
    return report, state.path, notes


class HtmlReporter:
    def __init__(self, config: pytest.Config) -> None:
        try:
            require_matplotlib("--latency-html")
        except MissingDependency as exc:
            raise pytest.UsageError(str(exc)) from None
        self.config = config
        self.path = config.stash[SETTINGS_KEY].html_path or ""
        self.written = False

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from .report.html import write_html
        from .report.json_report import build_report

        gathered = self.config.pluginmanager.get_plugin("latency-reporter")
        assert isinstance(gathered, LatencyReporter)
        settings = self.config.stash[SETTINGS_KEY]
        report = build_report(
            gathered.results,
            settings.as_dict(),
            cwd=self.config.rootpath,
            accuracy=gathered.accuracy,
            comparisons=gathered.comparisons,
        )
        baseline, path, notes = baseline_of(self.config)
        write_html(self.path, report, baseline, baseline_name=path, notes=notes)
        self.written = True

    @pytest.hookimpl(trylast=True)  # after the latency summary table
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.written and self.config.getoption("verbose") > -2:
            terminalreporter.write_line(f"latency HTML report written to {self.path}")
