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
