"""``--latency-markdown=PATH``: the GitHub-flavoured summary of the run (regressions against
the saved run first, when one is compared), also appended to ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

import os

import pytest

from ..collector import gathered, run_report
from ..keys import SAVED_RUN_KEY, SETTINGS_KEY, STEP_SUMMARY_ENV


def step_summary_path() -> str | None:
    return os.environ.get(STEP_SUMMARY_ENV) or None


def write(config: pytest.Config) -> None:
    path = config.stash[SETTINGS_KEY].markdown_path
    if not path:
        return
    # report.markdown reads verdicts (core.verdict, numpy): loaded only when a summary is due.
    from ...report import markdown

    report = run_report(config)
    state = config.stash.get(SAVED_RUN_KEY, None)
    if state is not None:
        # core.regression imports numpy; a saved run is loaded, so it is loaded already.
        from ...core.regression import describe_differences

        text = markdown.render(
            report["results"],
            state.environment,
            saved_run=state.path,
            env_differences=describe_differences(state.differences),
        )
    else:
        text = markdown.render(report["results"], report["environment"])
    markdown.write(path, text)
    written = gathered(config).written
    written["markdown"] = f"latency markdown written to {path}"
    summary = step_summary_path()
    if summary:
        markdown.write(summary, text, append=True)
        written["step_summary"] = "latency markdown appended to $GITHUB_STEP_SUMMARY"
