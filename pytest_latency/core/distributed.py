"""The open loop on Locust workers: the in-process open loop's accounting, fed by events.

`LocustDriver` is an `OpenLoopDriver` whose requests run elsewhere. The schedule is the same
(same seed, same `Schedule`): worker ``k`` of ``n`` issues arrivals ``k, k + n, ...``, and
reports each start and end (latency from the intended start, measured on its own clock)
over Locust's messaging; the master forwards them here. This process keeps every arrival's
intended start on its own clock, placed at or after the instant the worker used (the base
is set after the last worker's acknowledgement arrived).

The driver's clock is not the wall clock but the *confirmed* time: every batch of events
carries the worker's time since its base, and the driver's clock is the base plus the
smallest of those across workers. A request not reported finished by then has waited at
least ``confirmed - intended``, so its censored lower bound is never overstated by events
still in flight, and blocks wait for the reports before they account. Blocks, looks, late
and never-issued requests, censoring and hung requests are then accounted exactly as for
the in-process open loop; the runner, verdicts and reports do not know the difference.
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from .cluster import LocustCluster, LocustError
from .drivers import Block, Call, Clock
from .openloop import OpenLoopDriver

# Same lead as the workers' (`locust_engine.locustfile.LEAD_NS`): after the go message.
LEAD_NS = 50_000_000
ACK_TIMEOUT_S = 30.0
# A worker silent this long (no batch, not even an empty one) is taken for dead.
SILENT_S = 10.0
_runs = itertools.count(1)


class LocustDriver(OpenLoopDriver):
    """Open-loop requests issued by the Locust workers of `cluster`."""

    measures_cold_start = False  # the first request is part of the workers' schedule

    def __init__(
        self,
        call: Call,
        target: dict[str, Any],
        cluster: LocustCluster,
        rate_rps: float,
        arrivals: str,
        seed: int | None,
        clock: Clock = time.perf_counter_ns,
        *,
        workers: int = 1,
        drain_ns: int = 1_000_000_000,
    ) -> None:
        self.seed = seed if seed is not None else secrets.randbits(32)
        self.wall = clock
        super().__init__(
            call, rate_rps, arrivals, self.seed, self.confirmed, drain_ns=drain_ns, threads=0
        )
        self.target, self.cluster = target, cluster
        self.workers = workers
        self.concurrency = workers
        self.run_id = f"{id(self):x}-{next(_runs)}"
        self._acks: dict[str, str | None] = {}
        self._inbox: list[list[Any]] = []
        self._based = threading.Event()
        self._ack_error: str | None = None
        self._now: dict[str, int] = {}  # per worker: its last reported time since its base
        self._heard: dict[str, int] = {}  # per worker: when (wall) it last reported
        self._confirmed = 0

    def confirmed(self) -> int:
        """This driver's clock: the instant up to which every worker has reported."""
        if not self._based.is_set():
            return self.wall()
        now = self.wall()
        silent = [w for w, t in self._heard.items() if now - t > SILENT_S * 1e9]
        if silent:
            raise LocustError(
                f"{len(silent)} of {self.workers} Locust workers stopped reporting for more "
                f"than {SILENT_S:g} s (dead, or the master lost them)"
            )
        if not self.cluster.alive():
            raise LocustError("the Locust master exited mid-measurement")
        if self.cluster.connected < self.workers:
            # The master missed a worker's heartbeats: a worker died or lost the network.
            raise LocustError(
                f"a Locust worker disconnected mid-measurement: {self.cluster.connected} of "
                f"{self.workers} still connected; its requests' outcomes are unknown"
            )
        return self._confirmed

    def _on_event(self, event: dict[str, Any]) -> None:
        """On the cluster's reader thread: acknowledgements and raw events."""
        if event.get("run") != self.run_id:
            return  # a late event of an earlier measurement
        if event["ev"] == "ack":
            self._acks[event["worker"]] = event.get("error")
            if event.get("error"):
                self._ack_error = event["error"]
                self._based.set()
            elif len(self._acks) == self.workers:
                with self._lock:
                    self._base = self.wall() + LEAD_NS
                    self._confirmed = self._base - LEAD_NS
                    now = self.wall()
                    self._heard = dict.fromkeys(self._acks, now)
                    self._now = dict.fromkeys(self._acks, -LEAD_NS)
                    self._apply(self._inbox)
                    self._inbox = []
                    self._based.set()
        elif event["ev"] == "samples":
            with self._lock:
                if self._based.is_set():
                    self._apply(event["batch"])
                    worker = event["worker"]
                    self._now[worker] = int(event["now"])
                    self._heard[worker] = self.wall()
                    # Monotonic: the smallest report can only grow.
                    self._confirmed = max(self._confirmed, self._base + min(self._now.values()))
                else:
                    self._inbox.extend(event["batch"])

    def _apply(self, entries: list[list[Any]]) -> None:
        """Place workers' events on this clock (the caller holds the lock)."""
        for i, lag, latency, error in entries:
            self._ensure(i + 1)
            intended = self._intended[i]
            if not self._start[i]:
                self._start[i] = intended + lag
            if latency is not None:
                if error is not None:
                    self._error[i] = error
                self._end[i] = max(1, intended + latency)  # last: marks it finished

    def _begin(self, deadline_ns: int) -> None:
        self._horizon = self.horizon_ns if self.horizon_ns is not None else deadline_ns
        self._offsets = self.schedule.offsets()
        self.cluster.listener = self._on_event
        self.cluster.send(
            {
                "cmd": "go",
                "workers": self.workers,
                "data": {
                    "run": self.run_id,
                    "target": self.target,
                    "rate_rps": self.rate_rps,
                    "arrivals": self.arrivals,
                    "seed": self.seed,
                    "horizon_ns": self._horizon - self.wall() - LEAD_NS,
                },
            }
        )
        self._begun = True
        if not self._based.wait(ACK_TIMEOUT_S) or self._ack_error:
            raise LocustError(
                f"{len(self._acks)} of {self.workers} Locust workers acknowledged the start "
                f"within {ACK_TIMEOUT_S:g} s"
                + (
                    f"; a worker could not prepare the request:\n{self._ack_error}"
                    if self._ack_error
                    else ""
                )
            )

    def finish(self, grace_ns: int) -> Block | None:
        self._stop_workers()
        return super().finish(grace_ns)

    def _stop_workers(self) -> None:
        if self._begun and self.cluster.alive():
            with contextlib.suppress(OSError, LocustError):
                self.cluster.send({"cmd": "stop"})

    def close(self) -> None:
        self._stop_workers()
        super().close()
        if self.cluster.listener == self._on_event:
            self.cluster.listener = None


def make_locust_driver(
    target: dict[str, Any], cluster: LocustCluster
) -> Callable[[Call, Any, Clock, int], LocustDriver]:
    """A driver factory for `runner.measure` (``spec`` is the resolved `Spec`)."""

    def make(call: Call, spec: Any, clock: Clock, drain_ns: int) -> LocustDriver:
        return LocustDriver(
            call,
            target,
            cluster,
            spec.rate_rps,
            spec.arrivals or "poisson",
            spec.seed,
            clock,
            workers=spec.workers or 1,
            drain_ns=drain_ns,
        )

    return make
