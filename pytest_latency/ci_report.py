"""Controller-side reports of the CI options: the 'regressions vs BASELINE' terminal section,
the saved baseline (``--latency-save``) and the markdown summary (``--latency-markdown``).

Results come from the ``latency-reporter`` plugin, which gathers them from every test report
(local or xdist); the comparisons travel inside them (``result["regression"]``), made where
each result was recorded.
"""

from __future__ import annotations

from typing import Any

import pytest

from .baseline import BASELINE_KEY, CI_KEY, step_summary_path


class CiReporter:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.written: list[str] = []

    def _gathered(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        reporter = self.config.pluginmanager.get_plugin("latency-reporter")
        if reporter is None:
            return [], [], []
        return reporter.results, reporter.accuracy, reporter.comparisons

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        return config.stash[CI_KEY].header()

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        settings = self.config.stash[CI_KEY]
        results, accuracy, comparisons = self._gathered()
        if settings.save_path:
            from .plugin import SETTINGS_KEY
            from .report.json_report import build_report, write_report

            report = build_report(
                results,
                self.config.stash[SETTINGS_KEY].as_dict(),
                cwd=self.config.rootpath,
                accuracy=accuracy,
                comparisons=comparisons,
            )
            write_report(settings.save_path, report)
            self.written.append(f"latency baseline saved to {settings.save_path}")
        if settings.markdown_path:
            self._write_markdown(settings.markdown_path, results)

    def _write_markdown(self, path: str, results: list[dict[str, Any]]) -> None:
        from .report import markdown

        state = self.config.stash.get(BASELINE_KEY, None)
        if state is not None:
            from .core.regression import describe_differences

            environment = state.environment
            text = markdown.render(
                results,
                environment,
                baseline=state.path,
                env_differences=describe_differences(state.differences),
            )
        else:
            from .core.env import fingerprint

            text = markdown.render(results, fingerprint(self.config.rootpath))
        markdown.write(path, text)
        self.written.append(f"latency markdown written to {path}")
        summary = step_summary_path()
        if summary:
            markdown.write(summary, text, append=True)
            self.written.append("latency markdown appended to $GITHUB_STEP_SUMMARY")

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        verbosity = self.config.getoption("verbose")
        state = self.config.stash.get(BASELINE_KEY, None)
        tr = terminalreporter
        if state is not None and verbosity > -2:
            self._regressions(tr, state, verbosity)
        if verbosity > -2:
            for line in self.written:
                tr.write_line(line)

    def _regressions(self, tr: Any, state: Any, verbosity: int) -> None:
        from .core.regression import describe_differences
        from .report.changes import change_legend, change_table, counts

        results = self._gathered()[0]
        compared = [r["regression"] for r in results if r.get("regression")]
        regressed = [c for c in compared if c["classification"] == "regression"]
        tr.write_sep(
            "=",
            f"latency regressions vs {state.path}: {counts(compared)}",
            red=bool(regressed),
            bold=bool(regressed),
        )
        # -v: every percentile; default: what changed or is undecided; -q: regressions only.
        only = (
            None
            if verbosity > 0
            else frozenset({"regression"})
            if verbosity < 0
            else frozenset({"regression", "improvement", "inconclusive", "new"})
        )
        table = change_table(compared, only=only)
        if table:
            for line in table:
                tr.write_line(line)
        elif compared:
            tr.write_line("no regressions" + ("" if only is None else "; -v lists every row"))
        missing = state.baseline.missing(results)
        if missing and verbosity >= 0:
            tr.write_line(f"{len(missing)} baseline result(s) not measured in this run")
        if state.differences:
            tr.write_line(
                "warning: the environment differs from the baseline's, so latencies may not "
                f"be comparable: {describe_differences(state.differences)} "
                "(--latency-compare-strict refuses such comparisons)",
                yellow=True,
            )
        if verbosity >= 0 and compared:
            confidences = {c["confidence"] for c in compared}
            for line in change_legend(confidences.pop() if len(confidences) == 1 else None):
                tr.write_line(line)
