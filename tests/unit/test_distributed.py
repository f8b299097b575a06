"""`LocustDriver`'s accounting, fed by a fake cluster (no Locust): the seam between the
workers' events and the in-process open loop's blocks, looks and verdicts."""

from __future__ import annotations

import threading
import time
from typing import Any

from pytest_latency.core.distributed import LEAD_NS, make_locust_driver
from pytest_latency.core.openloop import Schedule
from pytest_latency.core.runner import measure
from pytest_latency.core.spec import Spec


class FakeCluster:
    """Acknowledges a go at once, then 'runs' the schedule: every arrival finishes after
    `latency_ns` (or never, inside `stall`), reported in batches every `every_s`."""

    def __init__(
        self,
        workers: int,
        latency_ns: int,
        every_s: float,
        stall: tuple[float, float] | None = None,
    ) -> None:
        self.workers, self.latency_ns, self.every_s, self.stall = (
            workers,
            latency_ns,
            every_s,
            stall,
        )
        self.listener: Any = None
        self.connected = workers
        self.commands: list[str] = []
        self._stop = threading.Event()
        self.pids: list[int] = []

    def alive(self) -> bool:
        return True

    def send(self, command: dict[str, Any]) -> None:
        self.commands.append(command["cmd"])
        if command["cmd"] == "go":
            data = command["data"]
            base = time.perf_counter_ns() + LEAD_NS
            for k in range(self.workers):
                self.listener({"ev": "ack", "run": data["run"], "worker": f"w{k}"})
            threading.Thread(target=self._run, args=(data, base), daemon=True).start()
        elif command["cmd"] == "stop":
            self._stop.set()

    def _run(self, data: dict[str, Any], base: int) -> None:
        offsets = Schedule(data["rate_rps"], data["arrivals"], data["seed"]).offsets()
        schedule = [next(offsets) for _ in range(int(data["rate_rps"] * 30))]
        started = finished = 0  # arrivals reported started / finished, in index order
        # Like a real worker: it keeps reporting after a stop (only issuing ends), until the
        # driver is gone.
        while self.listener is not None:
            time.sleep(self.every_s)
            now = time.perf_counter_ns() - base
            batches: dict[str, list[list[Any]]] = {f"w{k}": [] for k in range(self.workers)}
            while not self._stop.is_set() and started < len(schedule) and schedule[started] <= now:
                batches[f"w{started % self.workers}"].append([started, 10_000, None, None])
                started += 1
            while finished < started and schedule[finished] + self.latency_ns <= now:
                offset = schedule[finished]
                stalled = self.stall and self.stall[0] * 1e9 <= offset < self.stall[1] * 1e9
                if not stalled:
                    batch = batches[f"w{finished % self.workers}"]
                    batch.append([finished, 10_000, self.latency_ns, None])
                finished += 1
            listener = self.listener
            for worker, batch in batches.items():
                if listener is not None:
                    listener(
                        {
                            "ev": "samples",
                            "run": data["run"],
                            "worker": worker,
                            "batch": batch,
                            "now": now,
                        }
                    )


def _measure(cluster: FakeCluster, **spec: Any) -> Any:
    plan = Spec(engine="locust", workers=cluster.workers, seed=3, warmup=0, **spec).resolved({})
    target = {"kind": "http", "method": "GET", "url": "http://127.0.0.1:9/"}
    factory = make_locust_driver(target, cluster)  # type: ignore[arg-type]
    return measure(lambda: None, spec=plan, driver_factory=factory)


def test_reports_that_arrive_late_do_not_make_fast_requests_look_unfinished() -> None:
    # 1 ms requests, reported every 50 ms, against a 3 ms p99: waiting on the wall clock a
    # request would look unfinished for 50 ms (censored past the target: a false FAIL).
    cluster = FakeCluster(workers=2, latency_ns=1_000_000, every_s=0.05)
    m = _measure(cluster, p99_ms=3, rate_rps=400, max_time_s=5)
    assert m.verdict.passed, m.verdict
    assert m.samples.censored == 0
    assert set(m.samples.latencies_ns.tolist()) == {1_000_000}
    assert m.samples.load.concurrency == 2
    assert "stop" in cluster.commands


def test_requests_that_never_finish_are_censored_and_fail_the_verdict() -> None:
    cluster = FakeCluster(workers=2, latency_ns=1_000_000, every_s=0.01, stall=(0.2, 10.0))
    m = _measure(cluster, p99_ms=20, rate_rps=400, max_time_s=3, min_samples=400)
    assert not m.verdict.passed
    assert m.samples.censored > 0 or m.samples.hung > 0
