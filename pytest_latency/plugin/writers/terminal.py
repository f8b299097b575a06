"""The terminal summary: accuracy gates, same-run comparisons, the latency table and its
legend (before other plugins' summaries), then the regressions against the saved run and
what each writer wrote (after them)."""

from __future__ import annotations

from typing import Any

import pytest

from ..collector import gathered
from ..keys import SAVED_RUN_KEY, SavedRunState

# The order the writers' lines are printed in, after the regressions section.
WRITTEN_LAST = ("save", "markdown", "step_summary", "html", "benchmark_json")


def summary(config: pytest.Config, tr: Any) -> None:
    """The verdict tables, with what is shown set by -v / -q (PASS rows hidden under -q)."""
    # report.table formats verdicts (core.verdict, numpy): loaded when a run ends.
    from ...report.table import accuracy_rows, legend, summary_rows

    verbosity = config.getoption("verbose")
    if verbosity <= -2:
        return
    run = gathered(config)
    if run.accuracy:
        shown = (
            run.accuracy if verbosity >= 0 else [r for r in run.accuracy if r["decision"] != "PASS"]
        )
        if shown:
            tr.write_sep("=", f"accuracy: {len(run.accuracy)} gate(s)")
            for line in accuracy_rows(shown):
                tr.write_line(line)
    shown_comparisons = [c for c in run.comparisons if verbosity >= 0 or c["decision"] != "PASS"]
    if shown_comparisons:
        tr.write_sep("=", f"latency comparisons: {len(run.comparisons)}")
        for c in shown_comparisons:
            tr.write_line(f"{c['nodeid']}: {c['summary']}")
    if not run.results:
        return
    rows = run.results if verbosity >= 0 else [r for r in run.results if r["decision"] != "PASS"]
    tr.write_sep("=", f"latency: {len(run.results)} measurement(s)")
    if rows:
        for line in summary_rows(rows, verbose=verbosity > 0):
            tr.write_line(line)
    else:
        tr.write_line("all latency SLOs passed")
    workers = {r.get("xdist_worker") for r in run.results} - {None}
    if workers:
        tr.write_line(
            f"warning: {len(run.results)} measurement(s) ran under pytest-xdist beside "
            "other tests, which share the CPUs and skew latencies. Keep SLO tests serial: "
            "`pytest -m slo -p no:xdist` (and `pytest -m 'not slo' -n auto` for the rest).",
            yellow=True,
        )
    if verbosity >= 0:
        confidences = {r["confidence"] for r in run.results}
        for line in legend(confidences.pop() if len(confidences) == 1 else None):
            tr.write_line(line)
    if "json" in run.written:
        tr.write_line(run.written["json"])


def footer(config: pytest.Config, tr: Any) -> None:
    """After other plugins' summaries: regressions against the saved run, then the files."""
    verbosity = config.getoption("verbose")
    if verbosity <= -2:
        return
    state = config.stash.get(SAVED_RUN_KEY, None)
    if state is not None:
        regressions(config, tr, state, verbosity)
    written = gathered(config).written
    for key in WRITTEN_LAST:
        if key in written:
            tr.write_line(written[key])


def regressions(config: pytest.Config, tr: Any, state: SavedRunState, verbosity: int) -> None:
    # Change tables and environment differences need numpy: loaded when a run ends.
    from ...core.regression import describe_differences
    from ...report.changes import change_legend, change_table, counts

    results = gathered(config).results
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
    missing = state.run.missing(results)
    if missing and verbosity >= 0:
        tr.write_line(f"{len(missing)} saved run result(s) not measured in this run")
    if state.differences:
        tr.write_line(
            "warning: the environment differs from the saved run's, so latencies may not "
            f"be comparable: {describe_differences(state.differences)} "
            "(--latency-compare-strict refuses such comparisons)",
            yellow=True,
        )
    if verbosity >= 0 and compared:
        confidences = {c["confidence"] for c in compared}
        for line in change_legend(confidences.pop() if len(confidences) == 1 else None):
            tr.write_line(line)
