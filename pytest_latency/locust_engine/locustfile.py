"""The locustfile of pytest-latency's workers: an open loop on one shared arrival schedule.

Run by ``locust --worker -f <this file>`` (the plugin starts such workers itself, or a user
starts them on other machines). No Locust users run: on the master's ``latency_go`` message,
worker ``k`` of ``n`` takes arrivals ``k, k + n, k + 2n, ...`` of the schedule (the same
seeded `Schedule` as the in-process open loop), starts each as a greenlet at its intended
instant, and sends raw events -- ``[index, start_lag_ns, latency_ns | None, error | None]``,
a start first, then the end -- to the master in ``latency_samples`` messages. Latencies count
from the intended start on this worker's own clock, so clocks of different machines never
need to agree. Locust's request statistics are not fed: its percentiles are rounded buckets.
"""

from __future__ import annotations

import importlib
import inspect
import json
import time
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import gevent
from locust import User, constant, events, task
from locust.runners import WorkerRunner

from pytest_latency.core.openloop import Schedule

FLUSH_S = 0.02  # events are sent in batches this often
IDLE_FLUSH_S = 1.0  # once stopped with nothing in flight: only a sign of life
LEAD_NS = 50_000_000  # the first arrival is this long after the go message arrived
_SPIN_NS = 1_500_000  # gevent's timers fire up to ~1 ms late: the last stretch yields
POOL = 512  # HTTP connections per worker; further requests wait for one (and start late)

Clock = Callable[[], int]
clock: Clock = time.perf_counter_ns


class LatencyIdle(User):  # pragma: no cover - Locust needs a user class; none is started
    """Locust needs a user class in a locustfile; pytest-latency never starts one."""

    wait_time = constant(1)

    @task
    def idle(self) -> None:
        pass


def load(path: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function."""
    module_name, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


def make_request(target: dict[str, Any]) -> Callable[[int], None]:
    """The request of arrival ``i``, as the plugin described it (`core.remote`)."""
    if target["kind"] == "callable":
        fn = load(target["path"])
        args, kwargs = target.get("args", []), target.get("kwargs", {})

        def call(i: int) -> None:
            value = fn(*args, **kwargs)
            if inspect.isawaitable(value):  # its work would happen only when awaited
                if inspect.iscoroutine(value):
                    value.close()
                raise TypeError(
                    f"{target['path']} returned an awaitable: Locust workers run sync "
                    "callables (gevent makes their blocking I/O cooperative); pass a sync "
                    "function"
                )

        return call
    # geventhttpclient: comes with locust, an optional dependency; only HTTP targets need it
    from geventhttpclient import HTTPClient

    url = urlsplit(target["url"])
    client = HTTPClient.from_url(target["url"], concurrency=POOL, network_timeout=600)
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    method, headers = target["method"], dict(target.get("headers") or {})
    payloads: list[dict[str, Any]] = target.get("payloads") or [target.get("payload") or {}]
    vary = load(target["payload_fn"]) if target.get("payload_fn") else None
    encoded = [_encode(p, headers) for p in payloads]

    def request(i: int) -> None:
        body, head = _encode(vary(i), headers) if vary else encoded[i % len(encoded)]
        response = client.request(method, path, body=body, headers=head)
        response.read()
        status = response.status_code
        response.release()
        if status >= 400:
            raise RuntimeError(f"HTTP {status} from {method} {target['url']}")

    return request


def _encode(payload: dict[str, Any], headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    head = {**headers, **(payload.get("headers") or {})}
    if payload.get("json") is not None:
        head.setdefault("Content-Type", "application/json")
        return json.dumps(payload["json"]).encode(), head
    body = payload.get("body")
    return (body.encode() if isinstance(body, str) else body or b""), head


class Run:
    """One measurement's share of the schedule on this worker."""

    def __init__(self, runner: WorkerRunner, data: dict[str, Any]) -> None:
        self.runner, self.data = runner, data
        self.index, self.workers = int(data["index"]), int(data["workers"])
        self.run_id = data["run"]
        self.request = make_request(data["target"])
        self.events: list[list[Any]] = []
        self.stopped = False
        self.replaced = False
        self.inflight = 0
        self.base = clock() + LEAD_NS

    def start(self) -> None:
        gevent.spawn(self.dispatch)
        gevent.spawn(self.flush)

    def dispatch(self) -> None:
        schedule = Schedule(self.data["rate_rps"], self.data["arrivals"], self.data["seed"])
        horizon, base, k, n = self.data["horizon_ns"], self.base, self.index, self.workers
        for i, offset in enumerate(schedule.offsets()):
            if offset > horizon:
                return
            if i % n != k:
                continue
            intended = base + offset
            remaining = intended - clock() - _SPIN_NS
            if remaining > 0:
                gevent.sleep(remaining / 1e9)
            while clock() < intended:
                gevent.sleep(0)
            if self.stopped:
                return
            gevent.spawn(self.one, i, intended)

    def one(self, i: int, intended: int) -> None:
        start = clock()
        self.events.append([i, start - intended, None, None])
        self.inflight += 1
        error = None
        try:
            self.request(i)
        except Exception as exc:  # the request's failure is data
            error = "".join(traceback.format_exception(exc))
        self.inflight -= 1
        self.events.append([i, start - intended, clock() - intended, error])

    def flush(self) -> None:
        # Every batch carries this worker's time since its base: every event before that
        # instant is in this batch or an earlier one, so the plugin knows that a request not
        # reported finished had waited at least ``now - offset`` (its censored bound). Sent
        # even when empty, until the next run replaces this one (slowly once idle).
        while not self.replaced:
            idle = self.stopped and not self.inflight and not self.events
            gevent.sleep(IDLE_FLUSH_S if idle else FLUSH_S)
            batch, self.events = self.events, []
            now = clock() - self.base
            self.runner.send_message(
                "latency_samples", {"run": self.run_id, "batch": batch, "now": now}
            )


_current: list[Run] = []


def _on_init(environment: Any, **_: Any) -> None:
    runner = environment.runner
    if not isinstance(runner, WorkerRunner):
        return

    def go(environment: Any, msg: Any, **_: Any) -> None:
        for old in _current:
            old.stopped = old.replaced = True
        _current.clear()
        try:
            run = Run(runner, msg.data)
        except Exception as exc:
            runner.send_message(
                "latency_ack",
                {"run": msg.data["run"], "error": "".join(traceback.format_exception(exc))},
            )
            return
        _current.append(run)
        runner.send_message("latency_ack", {"run": run.run_id, "error": None})
        run.start()

    def stop(environment: Any, msg: Any, **_: Any) -> None:
        for run in _current:
            run.stopped = True

    runner.register_message("latency_go", go)
    runner.register_message("latency_stop", stop)


events.init.add_listener(_on_init)  # type: ignore[no-untyped-call]
