"""``--latency-benchmark-json=PATH``: the run's latency results in pytest-benchmark's JSON
format (see `report.benchmark_json`), for ``pytest-benchmark compare``."""

from __future__ import annotations

import pytest

from ...report.benchmark_json import build_benchmark_json
from ..collector import gathered, run_report
from ..keys import SETTINGS_KEY


def write(config: pytest.Config) -> None:
    path = config.stash[SETTINGS_KEY].benchmark_json_path
    if not path:
        return
    # json_report fingerprints the environment and loads numpy: only when a report is due.
    from ...report.json_report import write_report

    report = build_benchmark_json(run_report(config)["results"], cwd=config.rootpath)
    write_report(path, report)
    gathered(config).written["benchmark_json"] = (
        f"latency results in pytest-benchmark format ({len(report['benchmarks'])} "
        f"benchmark(s)) written to {path}"
    )
