"""The report writers, one module each. All of them take the run's report from `collector`
(built once) when the session finishes, on the controller only; `terminal` prints the tables
and what the others wrote."""

from __future__ import annotations

from typing import Any

import pytest

from . import benchmark_json, html, json_report, markdown, terminal

FILE_WRITERS = (json_report.write, markdown.write, html.write, benchmark_json.write)


class Writers:
    """Writes the files when the session finishes, then the terminal summary's tables."""

    def __init__(self, config: pytest.Config) -> None:
        html.check(config)
        self.config = config

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        for write in FILE_WRITERS:
            write(self.config)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminal.summary(self.config, terminalreporter)


class TerminalFooter:
    """The summary's last lines, after other plugins' sections (pytest-benchmark's table)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminal.footer(self.config, terminalreporter)
