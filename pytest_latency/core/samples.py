"""What a measurement recorded: raw latencies (integer ns), errors, warm-up and load facts.

The runner fills a `Samples`; `evaluate` turns it into a `Verdict`. Nothing here decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

# Stands for "unfinished, latency unknown" when a censored request bounds a quantile from
# above: larger than any latency, so it can only push a verdict towards FAIL.
CENSORED_UPPER_NS = int(np.iinfo(np.int64).max)


def _no_samples() -> IntArray:
    return np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class LoadStats:
    """How the offered load was generated (open loop) or how many workers ran (closed loop).

    Open loop: ``late`` counts requests that started more than ``late_threshold_ns`` after
    their intended start (their latency still counts from the intended start: coordinated
    omission correction); ``not_issued`` counts requests that were due but that no worker
    had started when their block ended (all workers busy); ``censored`` counts requests
    still unfinished when the measurement ended (each a lower bound on its latency);
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
    censored: int = 0


@dataclass(frozen=True)
class WarmupStats:
    """Warm-up that preceded the timed samples."""

    mode: str  # "count" or "auto"
    calls: int
    steady: bool  # auto: a steady state was detected before the bound
    duration_ns: int
    errors: int = 0  # calls that raised during warm-up (not counted in the timed samples)
    hung: int = 0  # calls still running when the measurement gave up on them


@dataclass(frozen=True)
class Samples:
    """Raw record of one measurement. Latencies of successful calls only, in ns.

    ``censored_ns`` (open loop): requests unfinished when the measurement ended, each with the
    time it had waited since its intended start -- a lower bound on its latency. ``hung``:
    calls still running when the measurement gave up on them (``max_time_s`` plus a grace).
    """

    latencies_ns: IntArray
    errors: int = 0
    first_error: str | None = None
    cold_start_ns: int | None = None
    wall_ns: int = 0  # time spent in timed blocks
    looks: int = 0
    stopped_by: str = "decided"  # "decided", "max_samples", "max_time", "hung"
    warmup: WarmupStats | None = None
    load: LoadStats = field(default_factory=lambda: LoadStats(mode="serial"))
    stages: Mapping[str, IntArray] = field(default_factory=dict)  # span durations per stage
    censored_ns: IntArray = field(default_factory=_no_samples)
    hung: int = 0
    hung_waited_ns: int = 0
    call_name: str = ""
    # Latencies (also in `latencies_ns`) of calls that returned a wrong answer (goodput).
    wrong_ns: IntArray = field(default_factory=_no_samples)

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

    @property
    def wrong(self) -> int:
        return len(self.wrong_ns)

    @property
    def censored(self) -> int:
        return len(self.censored_ns)

    def sorted_ns(self) -> IntArray:
        """Latencies, sorted, with each censored request at its lower bound (what is known)."""
        both = np.concatenate([self.latencies_ns, self.censored_ns]) if self.censored else None
        out = np.sort(self.latencies_ns if both is None else both, kind="stable")
        out.setflags(write=False)
        return out

    def sorted_upper_ns(self) -> IntArray:
        """Latencies, sorted, with each censored request at `CENSORED_UPPER_NS` (unknown)."""
        if not self.censored:
            return self.sorted_ns()
        unknown = np.full(self.censored, CENSORED_UPPER_NS, dtype=np.int64)
        out = np.sort(np.concatenate([self.latencies_ns, unknown]), kind="stable")
        out.setflags(write=False)
        return out
