"""``--latency-json=PATH`` and ``--latency-save=PATH``: the run's report as JSON (a saved run
is the same document, written where ``--latency-compare`` will later read it)."""

from __future__ import annotations

import pytest

from ..collector import gathered, run_report
from ..keys import SETTINGS_KEY


def write(config: pytest.Config) -> None:
    settings = config.stash[SETTINGS_KEY]
    if not (settings.json_path or settings.save_path):
        return
    # json_report fingerprints the environment and loads numpy: only when a report is due.
    from ...report.json_report import write_report

    report = run_report(config)
    if settings.json_path:
        write_report(settings.json_path, report)
        gathered(config).written["json"] = f"latency JSON written to {settings.json_path}"
    if settings.save_path:
        write_report(settings.save_path, report)
        gathered(config).written["save"] = f"latency run saved to {settings.save_path}"
