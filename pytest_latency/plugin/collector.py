"""Controller-side: gathers every result from the test reports (local or from xdist workers)
into `Gathered`, and builds the run's report from them once; every writer takes it from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .keys import GATHERED_KEY, REPORT_ATTR, SETTINGS_KEY, Gathered

if TYPE_CHECKING:
    from ..report.schema import LatencyReport


class Collector:
    """Registered on the controller only; the results travel on each report's ``__dict__``."""

    def __init__(self, gathered: Gathered) -> None:
        self.gathered = gathered

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        results = report.__dict__.get(REPORT_ATTR)
        if not results or report.when != "call":
            return
        outcome = (
            "xfailed"
            if hasattr(report, "wasxfail") and report.skipped
            else ("xpassed" if hasattr(report, "wasxfail") else report.outcome)
        )
        gathered = self.gathered
        for data in results:
            target = {"accuracy": gathered.accuracy, "comparison": gathered.comparisons}.get(
                data.get("kind", ""), gathered.results
            )
            target.append({**data, "outcome": outcome})


def gathered(config: pytest.Config) -> Gathered:
    """This run's results so far (empty on an xdist worker, which gathers nothing)."""
    return config.stash.get(GATHERED_KEY, None) or Gathered()


def run_report(config: pytest.Config) -> LatencyReport:
    """The run's report (the ``--latency-json`` document), built on first use, then reused."""
    state = config.stash[GATHERED_KEY]
    if state.report is None:
        # The JSON report module fingerprints the environment: loaded when a report is due.
        from ..report.json_report import build_report

        state.report = build_report(
            state.results,
            config.stash[SETTINGS_KEY].as_dict(),
            cwd=config.rootpath,
            accuracy=state.accuracy,
            comparisons=state.comparisons,
        )
    return state.report
