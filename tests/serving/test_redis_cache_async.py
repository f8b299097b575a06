"""The asyncio prediction cache (``redis.asyncio``) against a real redis-server: the same keys
and values as the blocking cache (they read each other's entries), one round trip per call,
and failing open when Redis is stopped mid-use."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("redis", reason="redis-py is not installed; run: pip install redis==8.1.0")

from reference_system.serving import prediction_cache as pc
from reference_system.serving.redis_server import REDIS_INSTALL, RedisServer, find_redis_server

TEXTS = [f"review number {i}: an async film" for i in range(10)]
LOGITS = [(-1.0 - i / 3, 0.5 + i / 7) for i in range(len(TEXTS))]
LABELS = [int(b > a) for a, b in LOGITS]


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    try:
        find_redis_server()
    except FileNotFoundError:
        pytest.skip(f"no redis-server binary; run: {REDIS_INSTALL}")
    with RedisServer() as server:
        yield server


def test_async_and_blocking_caches_share_keys_and_values(server: RedisServer) -> None:
    blocking = pc.PredictionCache(pc.connect(server.url), "async-v1")

    async def scenario() -> list[pc.CachedPrediction | None]:
        # A patient client: this test is about the format, not the 20 ms latency-path timeout
        # (a fresh event loop's first connect has exceeded 20 ms in some test orders).
        client = pc.connect_async(server.url, timeout_s=1.0)
        cache = pc.AsyncPredictionCache(client, "async-v1", ttl_s=60)
        try:
            assert await cache.get_many(TEXTS) == [None] * len(TEXTS)
            await cache.put_many(TEXTS[:5], LABELS[:5], LOGITS[:5])
            found = await cache.get_many(TEXTS)
            m = cache.metrics
            assert (m.hits, m.misses, m.errors, m.degraded) == (5, 15, 0, False), m.last_error
            return found
        finally:
            await cache.aclose()

    found = asyncio.run(scenario())
    assert [f.label if f else None for f in found] == [*LABELS[:5], *[None] * 5]
    # what the asyncio cache wrote, the blocking cache reads (and vice versa: same format)
    assert blocking.get_many(TEXTS[:5]) == found[:5]
    assert found[0] is not None
    assert found[0].logits == pytest.approx(LOGITS[0], abs=1e-6)
    blocking.client.close()


def test_async_cache_rejects_mismatched_lengths_before_touching_redis(server: RedisServer) -> None:
    async def scenario() -> None:
        cache = pc.AsyncPredictionCache(pc.connect_async(server.url, timeout_s=1.0), "async-v1")
        try:
            with pytest.raises(ValueError, match="one label and one logit pair per text"):
                await cache.put_many(TEXTS, LABELS[:3], LOGITS)
        finally:
            await cache.aclose()

    asyncio.run(scenario())


def test_async_cache_fails_open_when_redis_stops_and_the_circuit_skips_the_network() -> None:
    try:
        find_redis_server()
    except FileNotFoundError:
        pytest.skip(f"no redis-server binary; run: {REDIS_INSTALL}")

    async def scenario(server: RedisServer) -> tuple[float, float, pc.CacheMetrics]:
        cache = pc.AsyncPredictionCache(pc.connect_async(server.url), "async-v1", cooldown_s=60)
        try:
            await cache.put_many(TEXTS, LABELS, LOGITS)
            assert all(await cache.get_many(TEXTS))
            server.stop()
            started = time.perf_counter()
            assert await cache.get_many(TEXTS) == [None] * len(TEXTS)
            failed_s = time.perf_counter() - started
            started = time.perf_counter()
            assert await cache.get_many(TEXTS) == [None] * len(TEXTS)
            await cache.put_many(TEXTS, LABELS, LOGITS)  # dropped: the circuit is open
            skipped_s = time.perf_counter() - started
            return failed_s, skipped_s, cache.metrics
        finally:
            await cache.aclose()

    with RedisServer() as server:
        failed_s, skipped_s, m = asyncio.run(scenario(server))
    # The counters are the proof: one error, then both calls skipped the network. The
    # times are sanity bounds derived from the 20 ms socket timeout: one failed connect
    # (refused at once; a retry loop would take seconds), then no network at all -- less
    # than one timeout even with a scheduler hiccup on a busy 2-core runner.
    assert (m.errors, m.skipped_while_open, m.degraded) == (1, 2, True)
    assert failed_s < 0.1
    assert skipped_s < 0.02
    assert m.hits == len(TEXTS)
    assert m.misses == 2 * len(TEXTS)
    assert "Error" in m.last_error


def test_warm_opens_a_connection_and_counts_nothing_when_redis_is_gone() -> None:
    try:
        find_redis_server()
    except FileNotFoundError:
        pytest.skip(f"no redis-server binary; run: {REDIS_INSTALL}")

    async def scenario(server: RedisServer) -> tuple[bool, bool, pc.CacheMetrics]:
        cache = pc.AsyncPredictionCache(pc.connect_async(server.url, timeout_s=1.0), "w")
        try:
            up = await cache.warm()
            server.stop()
            return up, await cache.warm(), cache.metrics
        finally:
            await cache.aclose()

    with RedisServer() as server:
        up, gone, m = asyncio.run(scenario(server))
    assert (up, gone) == (True, False)
    assert (m.errors, m.degraded) == (0, False)  # a failed warm-up opens no circuit


def test_a_redis_killed_and_restarted_comes_back_after_the_cooldown() -> None:
    """SIGKILL, then the same server started again on the same port: the cache fails open
    while Redis is gone, and after one cooldown the probe finds it and `degraded` clears."""
    try:
        find_redis_server()
    except FileNotFoundError:
        pytest.skip(f"no redis-server binary; run: {REDIS_INSTALL}")

    async def scenario(server: RedisServer) -> list[tuple[str, pc.CacheMetrics]]:
        cache = pc.AsyncPredictionCache(pc.connect_async(server.url), "restart-v1", cooldown_s=0.2)
        seen = []
        try:
            await cache.put_many(TEXTS, LABELS, LOGITS)
            seen.append(("up", cache.metrics))
            server.process.proc.kill()  # type: ignore[union-attr]
            server.process.proc.wait()  # type: ignore[union-attr]
            assert await cache.get_many(TEXTS) == [None] * len(TEXTS)
            seen.append(("killed", cache.metrics))
            server.stop()
            server.start()  # same port: clients keep their URL
            await cache.get_many(TEXTS)  # within the cooldown: skipped, still degraded
            seen.append(("restarted, in cooldown", cache.metrics))
            await asyncio.sleep(0.25)
            await cache.put_many(TEXTS, LABELS, LOGITS)  # the probe: succeeds, circuit closes
            assert all(await cache.get_many(TEXTS))
            seen.append(("after cooldown", cache.metrics))
        finally:
            await cache.aclose()
        return seen

    with RedisServer() as server:
        port = server.port
        seen = asyncio.run(scenario(server))
        assert server.port == port
    states = {name: m for name, m in seen}
    assert not states["up"].degraded
    assert states["killed"].degraded
    assert states["killed"].errors == 1
    assert states["restarted, in cooldown"].degraded
    assert states["restarted, in cooldown"].skipped_while_open >= 1
    assert not states["after cooldown"].degraded
    assert states["after cooldown"].hits == len(TEXTS)


class _Client:
    """A seam: a redis.asyncio client whose MGET raises what the test says, then answers."""

    def __init__(self, *raises: BaseException) -> None:
        self.raises = list(raises)

    async def mget(self, keys: list[str]) -> list[None]:
        if self.raises:
            raise self.raises.pop(0)
        return [None] * len(keys)

    def get_connection_kwargs(self) -> dict[str, object]:
        return {"decode_responses": False}

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(
    "odd", [asyncio.CancelledError(), RuntimeError("a bug")], ids=["cancelled", "bug"]
)
def test_a_probe_ending_in_anything_but_a_redis_error_does_not_stick_half_open(
    odd: BaseException,
) -> None:
    """Before: any other exception during the half-open probe left `_probing` set, so every
    later call skipped Redis for ever. Now the probe is released and the circuit stays open
    for one more cooldown; the next probe closes it."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    async def scenario() -> pc.CacheMetrics:
        cache = pc.AsyncPredictionCache(
            _Client(RedisConnectionError("down"), odd), "probe-v1", cooldown_s=0.05
        )
        assert await cache.get_many(["a"]) == [None]  # fails open, circuit opens
        await asyncio.sleep(0.06)
        with pytest.raises(type(odd)):
            await cache.get_many(["a"])  # the probe: neither a success nor a Redis error
        assert cache.metrics.degraded
        assert "probe abandoned" in cache.metrics.last_error
        await asyncio.sleep(0.06)
        assert await cache.get_many(["a"]) == [None]  # the next probe reaches Redis
        return cache.metrics

    m = asyncio.run(scenario())
    assert not m.degraded
    assert m.errors == 1
