"""``--latency-html=PATH``: the controller-side plugin object that writes the HTML report.

Registered in ``pytest_configure`` only when the option is on (and never on xdist workers).
It renders what `LatencyReporter` gathered, in the same form as the JSON report, so
``pytest-latency plot run.json -o report.html`` later draws the same page. When a baseline run
is given (``--latency-compare=PATH``, where that option exists), its measurements are overlaid.
"""

from __future__ import annotations

from typing import Any

import pytest

from .plugin import SETTINGS_KEY, LatencyReporter
from .report.plots import MissingDependency, require_matplotlib


def baseline_path(config: pytest.Config) -> str | None:
    """The baseline run to overlay: ``--latency-compare`` / ini ``latency_compare`` when the
    option is registered (it may not be: then there is simply no baseline)."""
    value = config.getoption("latency_compare", None)
    if value is None:
        try:
            value = config.getini("latency_compare") or None
        except ValueError:  # no such ini key registered
            value = None
    return str(value) if value else None


class HtmlReporter:
    def __init__(self, config: pytest.Config) -> None:
        try:
            require_matplotlib("--latency-html")
        except MissingDependency as exc:
            raise pytest.UsageError(str(exc)) from None
        self.config = config
        self.path = config.stash[SETTINGS_KEY].html_path or ""
        self.messages: list[str] = []

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from .report.html import write_html
        from .report.json_report import build_report, load_report

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
        baseline: dict[str, Any] | None = None
        notes = []
        path = baseline_path(self.config)
        if path:
            try:
                baseline = load_report(path)
            except ValueError as exc:
                notes.append(f"baseline not overlaid: {exc}")
        write_html(self.path, report, baseline, baseline_name=path, notes=notes)
        self.messages = [f"latency HTML report written to {self.path}", *notes]

    @pytest.hookimpl(trylast=True)  # after the latency summary table
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        quiet = self.config.getoption("verbose") <= -2
        for message in self.messages[1:] if quiet else self.messages:
            terminalreporter.write_line(message)
