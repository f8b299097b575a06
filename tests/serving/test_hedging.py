"""The hedging client's seams, with a fake transport (``send(replica, payload)``): the delay
comes from a measured percentile, at most one hedge per request, the loser is cancelled, and
errors follow the documented policy (reference_system/serving/hedging.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from reference_system.serving.hedging import (
    AllReplicasFailed,
    HedgedClient,
    Refused,
    ReplicaError,
    RollingPercentile,
)


class FakeReplicas:
    """Replica i answers after `ms[i]` (a list per call, taken in turn), or raises `errors[i]`;
    records every send and every cancelled one."""

    def __init__(self, ms: list[list[float]], errors: dict[int, BaseException] | None = None):
        self.ms, self.errors = ms, errors or {}
        self.sent: list[int] = []
        self.cancelled: list[int] = []

    async def send(self, replica: int, payload: Any) -> str:
        self.sent.append(replica)
        delays = self.ms[replica]
        ms = delays.pop(0) if len(delays) > 1 else delays[0]
        try:
            await asyncio.sleep(ms / 1000)
        except asyncio.CancelledError:
            self.cancelled.append(replica)
            raise
        if replica in self.errors:
            raise self.errors[replica]
        return f"{payload}@{replica}"


def run(coro: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(coro())


def test_the_delay_is_the_rolling_percentile_after_its_warm_up() -> None:
    delay = RollingPercentile(0.95, window=100, min_samples=20, initial_ms=50.0)
    assert delay.value_ms() == 50.0  # nothing measured yet: the documented initial value
    for ms in range(1, 20):
        delay.record(float(ms))
    assert delay.value_ms() == 50.0  # 19 < min_samples
    delay.record(20.0)
    assert delay.value_ms() == 19.0  # nearest rank: ceil(0.95 * 20) = the 19th of 1..20
    for ms in range(21, 201):  # the window keeps the last 100: 101..200
        delay.record(float(ms))
    assert delay.value_ms() == 195.0


def test_a_request_answered_before_the_delay_is_never_hedged() -> None:
    fake = FakeReplicas([[5], [5]])
    client = HedgedClient(fake.send, 2, delay=RollingPercentile(initial_ms=40))

    async def go() -> list[str]:
        return [await client.request(i) for i in range(4)]

    assert run(go) == ["0@0", "1@1", "2@0", "3@1"]  # round robin over the replicas
    assert fake.sent == [0, 1, 0, 1]
    assert client.counts()["hedges"] == 0
    assert client.extra_load() == 0.0


def test_a_slow_primary_is_hedged_once_and_the_loser_is_cancelled() -> None:
    fake = FakeReplicas([[1000], [10]])  # replica 0 stalls; 1 answers in 10 ms
    client = HedgedClient(fake.send, 2, delay=RollingPercentile(initial_ms=20))

    async def go() -> tuple[str, float]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        answer = await client.request("x")
        return answer, loop.time() - t0

    answer, took_s = run(go)
    assert answer == "x@1"
    assert 0.025 <= took_s < 0.5  # the hedge's 20 ms delay + its 10 ms, not the 1 s stall
    assert fake.sent == [0, 1]
    assert fake.cancelled == [0]
    counts = client.counts()
    assert (counts["hedges"], counts["hedge_wins"], counts["cancelled"]) == (1, 1, 1)
    assert client.extra_load() == 1.0


def test_never_more_than_one_hedge_even_when_both_replicas_stall() -> None:
    fake = FakeReplicas([[120], [120]])
    client = HedgedClient(fake.send, 2, delay=RollingPercentile(initial_ms=10))
    assert run(lambda: client.request("x")) == "x@0"  # the primary, first after all
    assert fake.sent == [0, 1]
    assert fake.cancelled == [1]
    assert client.counts()["hedges"] == 1


def test_a_cancelled_loser_raises_the_percentile_at_the_time_it_had_waited() -> None:
    delay = RollingPercentile(0.5, window=10, min_samples=1, initial_ms=10)
    fake = FakeReplicas([[1000], [30]])
    client = HedgedClient(fake.send, 2, delay=delay)
    run(lambda: client.request("x"))
    recorded = sorted(delay._recent)
    assert len(recorded) == 2
    assert 25 <= recorded[0] <= 200  # the hedge's own time, from its send
    assert recorded[1] >= recorded[0] + 8  # the loser: waited from 0, so at least 10 ms more


def test_the_primarys_failure_sends_the_hedge_at_once() -> None:
    fake = FakeReplicas([[1], [5]], errors={0: ReplicaError("503")})
    client = HedgedClient(fake.send, 2, delay=RollingPercentile(initial_ms=1000))

    async def go() -> tuple[str, float]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        return await client.request("x"), loop.time() - t0

    answer, took_s = run(go)
    assert answer == "x@1"
    assert took_s < 0.5  # did not wait for the 1 s delay
    counts = client.counts()
    assert (counts["failovers"], counts["hedges"], counts["errors"]) == (1, 0, 0)


def test_a_refusal_is_raised_at_once_without_a_second_opinion() -> None:
    fake = FakeReplicas([[1], [5]], errors={0: Refused("422 invalid_text")})
    client = HedgedClient(fake.send, 2, delay=RollingPercentile(initial_ms=1000))
    with pytest.raises(Refused, match="422"):
        run(lambda: client.request("x"))
    assert fake.sent == [0]
    assert client.counts()["errors"] == 1


def test_a_hedge_that_fails_waits_for_the_primary() -> None:
    fake = FakeReplicas([[60], [1]], errors={1: ReplicaError("reset")})
    client = HedgedClient(fake.send, 2, delay=RollingPercentile(initial_ms=10))
    assert run(lambda: client.request("x")) == "x@0"
    assert client.counts()["errors"] == 0


def test_both_failing_raises_both_errors() -> None:
    fake = FakeReplicas([[1], [1]], errors={0: ReplicaError("503 a"), 1: ReplicaError("503 b")})
    client = HedgedClient(fake.send, 2, delay=RollingPercentile(initial_ms=10))
    with pytest.raises(AllReplicasFailed, match=r"503 a.*503 b") as info:
        run(lambda: client.request("x"))
    assert len(info.value.errors) == 2
    assert client.counts()["errors"] == 1


def test_unhedged_twin_uses_the_same_round_robin_and_never_hedges() -> None:
    fake = FakeReplicas([[30], [30]])
    client = HedgedClient(fake.send, 2, hedge=False, delay=RollingPercentile(initial_ms=1))

    async def go() -> list[str]:
        return [await client.request(i) for i in range(3)]

    assert run(go) == ["0@0", "1@1", "2@0"]
    assert client.counts()["hedges"] == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantile": 1.0}, r"quantile 1\.0 is not valid; expected a number in \(0, 1\)"),
        ({"window": 0}, r"window 0 is not valid"),
        ({"min_samples": 600}, r"min_samples 600 is not valid; .* from 1 to window \(500\)"),
        ({"initial_ms": -1}, r"initial_ms -1 is not valid"),
    ],
)
def test_bad_percentile_settings_are_refused_by_name(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RollingPercentile(**kwargs)


def test_hedging_needs_two_replicas() -> None:
    with pytest.raises(ValueError, match="at least 2 replicas; got 1"):
        HedgedClient(FakeReplicas([[1]]).send, 1)
