"""Hedged requests: send to a second replica when the first has not answered by the p95, and
take whichever answers first.

    replicas = HttpReplicas([url_a, url_b])
    client = HedgedClient(replicas.send, replicas=2)          # hedge=False: the same, unhedged
    answer = await client.request(json.dumps({"texts": ["a fine film"]}).encode())
    client.counts()   # {"requests": 1, "hedges": 0, "failovers": 0, ...}

Why: when the tail comes from occasional stalls of *one* replica (a pause, a slow disk, a
noisy neighbour), a request stuck behind one is likely answered by another in its normal
time. The price is extra load: about 5 % at a p95 delay, since about 5 % of requests are
still unanswered then. It does not help when the tail is load-induced queueing (every
replica is slow, and the hedges add load to a saturated system): docs/serving.md, "Hedged
requests".

The policy, request by request:

- **primary**: replicas are taken in turn (round robin); the hedge goes to the next one.
- **delay**: a :class:`RollingPercentile` of recent attempt latencies (default the p95 of the
  last 500; each attempt timed from its own send). Until it has `min_samples` (20) latencies
  the delay is `initial_ms` (50 ms). An attempt cancelled as the loser counts at the time it
  had waited (a lower bound, and above the delay it lost at), so stalls cut short by a hedge
  still raise the percentile instead of vanishing from it.
- **at most one hedge** per request, whatever happens; the first successful answer wins and
  the other attempt is cancelled (its connection closed, so the server sees the client go).
- **errors**: a replica that *refuses* the request (HTTP 4xx: :class:`Refused`) gets no
  second opinion -- the other replica would refuse it too -- so that error is raised at once
  and any attempt still running is cancelled. Any other failure of an attempt (5xx, a reset
  connection, a timeout) is not an answer: if it is the primary and no hedge was sent yet, the
  hedge is sent at once (a *failover*; it uses the one hedge); otherwise the request waits for
  the attempt still running. When both attempts fail, :class:`AllReplicasFailed` carries both
  errors. A request that fails this way records no latency.

Counts (``counts()``): requests, hedges (sent after the delay), failovers (sent after an
error), hedge wins, losers cancelled, errors. Extra load = (hedges + failovers) / requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Refused(Exception):
    """A replica refused the request itself (HTTP 4xx): no other replica will take it."""


class ReplicaError(Exception):
    """A replica failed to answer (HTTP 5xx or an unreadable answer): another one may."""


class AllReplicasFailed(Exception):
    """Both attempts of a request failed; `errors` holds them, the primary's first."""

    def __init__(self, errors: Sequence[BaseException]) -> None:
        self.errors = list(errors)
        super().__init__(
            "every attempt failed: " + "; ".join(f"{type(e).__name__}: {e}" for e in errors)
        )


class RollingPercentile:
    """The `quantile` (nearest rank) of the last `window` latencies recorded, in ms; before
    `min_samples` have been recorded, `initial_ms`. Never under `floor_ms`, so a run of very
    fast answers cannot make every request hedge."""

    def __init__(
        self,
        quantile: float = 0.95,
        *,
        window: int = 500,
        min_samples: int = 20,
        initial_ms: float = 50.0,
        floor_ms: float = 0.5,
    ) -> None:
        if isinstance(quantile, bool) or not 0 < quantile < 1:
            raise ValueError(f"quantile {quantile!r} is not valid; expected a number in (0, 1)")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window {window!r} is not valid; expected an integer >= 1")
        if (
            isinstance(min_samples, bool)
            or not isinstance(min_samples, int)
            or not (1 <= min_samples <= window)
        ):
            raise ValueError(
                f"min_samples {min_samples!r} is not valid; expected an integer from 1 to "
                f"window ({window})"
            )
        for name, value in (("initial_ms", initial_ms), ("floor_ms", floor_ms)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise ValueError(f"{name} {value!r} is not valid; expected milliseconds >= 0")
        self.quantile, self.min_samples = quantile, min_samples
        self.initial_ms, self.floor_ms = float(initial_ms), float(floor_ms)
        self._recent: deque[float] = deque(maxlen=window)
        self._value: float | None = None  # cached until the next record

    def record(self, ms: float) -> None:
        self._recent.append(ms)
        self._value = None

    @property
    def warm(self) -> bool:
        return len(self._recent) >= self.min_samples

    def value_ms(self) -> float:
        if not self.warm:
            return max(self.initial_ms, self.floor_ms)
        if self._value is None:
            ranked = sorted(self._recent)
            self._value = ranked[max(0, math.ceil(self.quantile * len(ranked)) - 1)]
        return max(self._value, self.floor_ms)


class HedgedClient(Generic[T]):
    """``await request(payload)``: `send(replica, payload)` on one replica, hedged to the next
    after ``delay.value_ms()`` (see the module's policy). ``hedge=False`` sends every request
    to one replica in the same round robin and waits for it: the unhedged twin, for
    comparisons in the same run."""

    def __init__(
        self,
        send: Callable[[int, Any], Awaitable[T]],
        replicas: int,
        *,
        hedge: bool = True,
        delay: RollingPercentile | None = None,
        clock: Callable[[], int] = time.perf_counter_ns,
    ) -> None:
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
            raise ValueError(f"replicas {replicas!r} is not valid; expected an integer >= 1")
        if hedge and replicas < 2:
            raise ValueError("hedging needs at least 2 replicas; got 1 (or pass hedge=False)")
        self._send, self.replicas, self.hedge = send, replicas, hedge
        self.delay = delay or RollingPercentile()
        self._clock = clock
        self._next = 0
        self._counts = dict.fromkeys(
            ("requests", "hedges", "failovers", "hedge_wins", "cancelled", "errors"), 0
        )

    def counts(self) -> dict[str, int]:
        return dict(self._counts)

    def extra_load(self) -> float:
        """(hedges + failovers) / requests: the share of requests sent twice."""
        c = self._counts
        return (c["hedges"] + c["failovers"]) / c["requests"] if c["requests"] else 0.0

    async def request(self, payload: Any) -> T:
        self._counts["requests"] += 1
        primary = self._next
        self._next = (primary + 1) % self.replicas
        first = _Attempt(self, primary, payload)
        if not self.hedge:
            try:
                return await first.result()
            except BaseException:
                self._counts["errors"] += 1
                raise
        second: _Attempt[T] | None = None
        try:
            await asyncio.wait({first.task}, timeout=self.delay.value_ms() / 1000)
            if first.task.done() and first.error() is None:
                return first.task.result()
            if first.task.done() and isinstance(first.error(), Refused):
                raise _error(first)
            second = _Attempt(self, (primary + 1) % self.replicas, payload)
            self._counts["failovers" if first.task.done() else "hedges"] += 1
            pending = {a.task: a for a in (first, second) if not a.task.done()}
            while pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    attempt = pending.pop(task)
                    error = attempt.error()
                    if error is None:
                        if attempt is second:
                            self._counts["hedge_wins"] += 1
                        return task.result()
                    if isinstance(error, Refused):
                        raise error
            raise AllReplicasFailed([e for a in (first, second) if (e := a.error())])
        except BaseException:
            self._counts["errors"] += 1
            raise
        finally:
            for each in (first, second):
                if each is not None:
                    await each.cancel()


class _Attempt(Generic[T]):
    """One send to one replica, timed from its own start; records its latency into the
    client's delay when it succeeds, or its waited time when it is cancelled as the loser."""

    def __init__(self, client: HedgedClient[T], replica: int, payload: Any) -> None:
        self.client, self.replica = client, replica
        self.t0 = client._clock()
        self.task: asyncio.Task[T] = asyncio.ensure_future(self._run(payload))

    async def _run(self, payload: Any) -> T:
        out = await self.client._send(self.replica, payload)
        self.client.delay.record((self.client._clock() - self.t0) / 1e6)
        return out

    async def result(self) -> T:
        return await self.task

    def error(self) -> BaseException | None:
        if not self.task.done() or self.task.cancelled():
            return None
        return self.task.exception()

    async def cancel(self) -> None:
        if self.task.done():
            if not self.task.cancelled():
                self.task.exception()  # retrieved: asyncio logs no "never retrieved"
            return
        waited_ms = (self.client._clock() - self.t0) / 1e6
        self.task.cancel()
        # It may also have failed as it was cancelled: nobody wants its outcome now.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        self.client._counts["cancelled"] += 1
        self.client.delay.record(waited_ms)


def _error(attempt: _Attempt[Any]) -> BaseException:
    error = attempt.error()
    assert error is not None
    return error


class HttpReplicas:
    """``send(i, body)``: ``POST /predict`` with `body` to replica `i` (asyncio, one kept-alive
    connection pool per replica) -> the decoded answer. 4xx -> :class:`Refused`; any other
    status but 200 -> :class:`ReplicaError`. Use it on one event loop at a time."""

    def __init__(self, urls: Sequence[str], *, timeout_s: float = 5.0) -> None:
        from reference_system.serving.async_http import AsyncKeepAliveClient

        if not urls:
            raise ValueError("HttpReplicas needs at least one URL")
        self.urls = list(urls)
        self.clients = [AsyncKeepAliveClient(u, timeout_s=timeout_s) for u in self.urls]

    async def send(self, replica: int, body: bytes) -> dict[str, Any]:
        response = await self.clients[replica].post("/predict", body)
        if response.status == 200:
            answer: dict[str, Any] = json.loads(response.body)
            return answer
        what = f"{self.urls[replica]}/predict answered {response.status}: {response.body[:200]!r}"
        raise (Refused if 400 <= response.status < 500 else ReplicaError)(what)

    def close(self) -> None:
        """Close every connection (from any thread, once no request is running)."""
        for client in self.clients:
            client.close()

    @property
    def aborted(self) -> int:
        """Requests abandoned midway (cancelled losers among them), all replicas."""
        return sum(c.aborted for c in self.clients)
