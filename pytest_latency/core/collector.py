"""Accumulates a measurement's blocks into what `evaluate` needs: latencies, errors, an open
loop's censored requests (by arrival index, so a later finish replaces its bound), hung calls
and the load facts."""

from __future__ import annotations

from typing import Any

import numpy as np

from .drivers import LATE_THRESHOLD_NS, Block, Call, Driver
from .samples import LoadStats, Samples, WarmupStats
from .spec import Spec
from .stages import StageRecorder


class Collector:
    """Accumulates blocks into the arrays `evaluate` needs."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray[Any, np.dtype[np.int64]]] = []
        self.n = 0
        self.errors = 0
        self.first_error: str | None = None
        self.wall_ns = 0
        self.lags: list[int] = []
        self.not_issued = 0
        self.scheduled_span_ns = 0
        self.actual_span_ns = 0
        self.censored: dict[int, int] = {}  # open loop: arrival index -> lower bound, ns
        self.hung = 0
        self.hung_waited_ns = 0
        self.wrong: list[int] = []  # latencies of answers `Call.check` rejected

    @property
    def calls(self) -> int:
        """Calls accounted for: finished (timed or failed) and unfinished (censored)."""
        return self.n + self.errors + len(self.censored)

    def add(self, block: Block) -> None:
        late: list[int] = []
        for i, latency, error, wrong in block.resolved:  # earlier-censored, finished since
            if self.censored.pop(i, None) is None:
                continue  # a warm-up request
            if latency is None:
                self.errors += 1
                self.first_error = self.first_error or error
            else:
                late.append(latency)
                if wrong:
                    self.wrong.append(latency)
        self.wrong.extend(block.wrong_ns)
        self.censored.update(block.censored)
        for i, waited in block.still_censored.items():
            if i in self.censored:  # not a warm-up request: its bound grew
                self.censored[i] = waited
        latencies = block.latencies_ns + late
        if latencies:
            arr = np.asarray(latencies, dtype=np.int64)
            self.chunks.append(arr)
            self.n += len(arr)
        self.errors += block.errors
        if self.first_error is None:
            self.first_error = block.first_error
        self.hung += block.hung
        self.hung_waited_ns = max(self.hung_waited_ns, block.hung_waited_ns)
        self.wall_ns += block.wall_ns
        self.lags.extend(block.start_lags_ns)
        self.not_issued += block.not_issued
        self.scheduled_span_ns += block.scheduled_span_ns
        self.actual_span_ns += block.actual_span_ns

    def samples(
        self,
        cold_ns: int | None,
        look: int,
        warm: WarmupStats,
        driver: Driver,
        spec: Spec,
        recorder: StageRecorder,
        call: Call,
    ) -> Samples:
        return Samples(
            latencies_ns=self.latencies(),
            errors=self.errors,
            first_error=self.first_error,
            cold_start_ns=cold_ns,
            wall_ns=self.wall_ns,
            looks=look,
            warmup=warm,
            load=self.load(driver, spec),
            stages=recorder.arrays(),
            censored_ns=np.fromiter(self.censored.values(), dtype=np.int64),
            hung=self.hung,
            hung_waited_ns=self.hung_waited_ns,
            call_name=call.name,
            wrong_ns=np.asarray(self.wrong, dtype=np.int64),
        )

    def latencies(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        if len(self.chunks) > 1:
            self.chunks = [np.concatenate(self.chunks)]
        out = self.chunks[0] if self.chunks else np.empty(0, dtype=np.int64)
        return out

    def load(self, driver: Driver, spec: Spec) -> LoadStats:
        if driver.mode != "open":
            return LoadStats(mode=driver.mode, concurrency=driver.concurrency)
        lags = np.asarray(self.lags, dtype=np.int64)
        achieved = None
        if self.actual_span_ns > 0 and spec.rate_rps is not None:
            # Rate the requests really started at, scaled against the schedule's own rate so
            # that Poisson noise in a short schedule is not mistaken for falling behind.
            achieved = spec.rate_rps * self.scheduled_span_ns / self.actual_span_ns
        return LoadStats(
            mode="open",
            concurrency=driver.concurrency,
            offered_rps=spec.rate_rps,
            arrivals=spec.arrivals,
            issued=len(lags),
            late=int((lags > LATE_THRESHOLD_NS).sum()),
            not_issued=self.not_issued,
            late_threshold_ns=LATE_THRESHOLD_NS,
            start_lag_p50_ns=int(np.percentile(lags, 50)) if len(lags) else None,
            start_lag_p99_ns=int(np.percentile(lags, 99)) if len(lags) else None,
            achieved_rps=achieved,
            censored=len(self.censored),
        )
