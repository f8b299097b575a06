"""What a measurement recorded: raw latencies (integer ns), errors, warm-up and load facts.

The runner fills a `Samples`; `evaluate` turns it into a `Verdict`. Nothing here decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class LoadStats:
    """How the offered load was generated (open loop) or how many workers ran (closed loop).

    Open loop: ``late`` counts requests that started more than ``late_threshold_ns`` after
    their intended start (their latency still counts from the intended start: coordinated
    omission correction); ``not_issued`` counts scheduled requests the budget ended before;
    ``achieved_rps`` is the rate at which requests actually started.
    """

    mode: str  # "serial", "closed", "open"
    concurrency: int | None = None
    offered_rps: float | None = None
    arrivals: str | None = None
    issued: int = 0
    late: int = 0
    not_issued: int = 0
    late_threshold_ns: int = 0
    start_lag_p50_ns: int | None = None
    start_lag_p99_ns: int | None = None
    achieved_rps: float | None = None


@dataclass(frozen=True)
class WarmupStats:
    """Warm-up that preceded the timed samples."""

    mode: str  # "count" or "auto"
    calls: int
    steady: bool  # auto: a steady state was detected before the bound
    duration_ns: int
    errors: int = 0  # calls that raised during warm-up (not counted in the timed samples)


@dataclass(frozen=True)
class Samples:
    """Raw record of one measurement. Latencies of successful calls only, in ns."""

    latencies_ns: IntArray
    errors: int = 0
    first_error: str | None = None
    cold_start_ns: int | None = None
    wall_ns: int = 0  # time spent in timed blocks
    looks: int = 0
    stopped_by: str = "decided"  # "decided", "max_samples", "max_time"
    warmup: WarmupStats | None = None
    load: LoadStats = field(default_factory=lambda: LoadStats(mode="serial"))
    stages: Mapping[str, IntArray] = field(default_factory=dict)  # span durations per stage

    @property
    def n(self) -> int:
        return len(self.latencies_ns)

    @property
    def throughput_rps(self) -> float | None:
        """Successful calls per second of timed wall time."""
        if self.wall_ns <= 0 or self.n == 0:
            return None
        return self.n / (self.wall_ns / 1e9)

    @property
    def error_rate(self) -> float:
        total = self.n + self.errors
        return self.errors / total if total else 0.0

    def sorted_ns(self) -> IntArray:
        out = np.sort(self.latencies_ns, kind="stable")
        out.setflags(write=False)
        return out
