"""Per-request logs that other latency tools write, read into samples for `judge`.

    run = perf_analyzer_export("profile.json")          # perf_analyzer --profile-export-file
    latency.judge(run.latencies_ms, name=run.source, unfinished_ms=run.unfinished_ms,
                  wall_s=run.wall_s)

Triton's ``perf_analyzer`` (2.x, ``--profile-export-file``) writes every request it sent: its
send time (``timestamp``, ns) and its responses' arrival times (``response_timestamps``), per
experiment (one concurrency or request rate), with the measurement windows' boundaries. By
default the samples are the requests perf_analyzer itself reports on -- those that completed
in the last ``windows`` (3, its stability window count) measurement windows -- so the count,
mean and percentiles agree with its own summary; ``windows=None`` takes every request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .spec import SpecError

__all__ = ["Imported", "perf_analyzer_export"]


@dataclass(frozen=True)
class Imported:
    """Latencies read from another tool's log, ready for `judge` / ``latency.judge``."""

    latencies_ms: np.ndarray[Any, Any]  # answered requests, from send to last response
    unfinished_ms: np.ndarray[Any, Any]  # requests with no response: waited until the log ended
    wall_s: float  # from the first send to the end of the last window taken
    source: str  # e.g. "perf_analyzer 2.51.0, concurrency 1"


def perf_analyzer_export(
    path: str | Path, *, experiment: int = 0, windows: int | None = 3
) -> Imported:
    """Read one experiment of a ``perf_analyzer --profile-export-file`` JSON file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        experiments = doc["experiments"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpecError(
            f"{path}: not a perf_analyzer profile export ({type(exc).__name__}: {exc}); write "
            "one with perf_analyzer --profile-export-file PATH"
        ) from None
    if not isinstance(experiments, list) or not 0 <= experiment < len(experiments):
        count = len(experiments) if isinstance(experiments, list) else 0
        raise SpecError(
            f"experiment={experiment!r} is not valid for {path}: it holds {count} "
            f"experiment(s), numbered from 0"
        )
    if windows is not None and (
        isinstance(windows, bool) or not isinstance(windows, int) or windows < 1
    ):
        raise SpecError(f"windows={windows!r} is not valid; expected a count >= 1, or None")
    run = experiments[experiment]
    requests = run.get("requests") or []
    bounds = sorted(run.get("window_boundaries") or [])
    if not requests:
        raise SpecError(f"{path}: experiment {experiment} has no requests")
    starts = np.array([r["timestamp"] for r in requests], dtype=np.int64)
    ends = np.array(
        [r["response_timestamps"][-1] if r.get("response_timestamps") else -1 for r in requests],
        dtype=np.int64,
    )
    log_end = int(max(ends.max(), starts.max(), bounds[-1] if bounds else 0))
    lo, hi = int(starts.min()), log_end
    if windows is not None and len(bounds) >= 2:
        lo, hi = bounds[max(0, len(bounds) - 1 - windows)], bounds[-1]
    answered = (ends >= 0) & (ends >= lo) & (ends <= hi)
    pending = (ends < 0) & (starts <= hi)
    setting = run.get("experiment") or {}
    source = (
        f"perf_analyzer {doc.get('version', '?')}, {setting.get('mode', '?')} "
        f"{setting.get('value', '?')}"
    )
    first = int(starts[answered | pending].min()) if (answered | pending).any() else lo
    return Imported(
        latencies_ms=(ends[answered] - starts[answered]) / 1e6,
        unfinished_ms=np.maximum(hi - starts[pending], 0) / 1e6,
        wall_s=max(hi - max(first, lo), 1) / 1e9,
        source=source,
    )
