"""Redis killed and restarted under a real co-located front: the front answers throughout
(from the model while Redis is gone), ``/metrics`` shows ``cache.degraded`` while it is down,
and after the circuit breaker's cooldown (1 s in the front) the cache is back
(``degraded`` false again) with no restart of the front. Loopback only, bounded in time."""

from __future__ import annotations

import time
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="run: pip install -r requirements/reference.txt")
pytest.importorskip("redis", reason="redis-py is not installed; run: pip install redis==8.1.0")

from reference_system.serving.redis_server import (  # noqa: E402
    REDIS_INSTALL,
    RedisServer,
    find_redis_server,
)
from reference_system.serving.services import SentimentService  # noqa: E402


def _degraded_after_requests(
    client: Any, until: bool, timeout_s: float, statuses: list[int]
) -> tuple[bool, float]:
    """Send a fresh text every 50 ms until ``/metrics`` says ``cache.degraded == until`` or
    `timeout_s` passes; every status goes to `statuses`. Returns (reached, seconds)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        text = f"a film about a cache that comes back ({time.time_ns()})"
        statuses.append(client.post("/predict", json={"texts": [text]}).status_code)
        if client.get("/metrics").json()["cache"]["degraded"] is until:
            return True, time.monotonic() - start
        time.sleep(0.05)
    return False, time.monotonic() - start


def test_a_front_recovers_its_cache_after_redis_is_killed_and_restarted(
    artifacts: Any, request: pytest.FixtureRequest
) -> None:
    try:
        find_redis_server()
    except FileNotFoundError:
        pytest.skip(f"no redis-server binary; run: {REDIS_INSTALL}")
    profile = request.config.getoption("--reference-profile")
    with RedisServer() as redis_server:
        port = redis_server.port
        extra = ["--redis-url", redis_server.url, "--model", "student"]
        with (
            SentimentService("colocated", profile=profile, extra=extra) as front,
            httpx.Client(base_url=front.url, timeout=5) as client,
        ):
            statuses: list[int] = []
            assert _degraded_after_requests(client, False, 5.0, statuses)[0]
            redis_server.process.proc.kill()  # type: ignore[union-attr]  # SIGKILL, no goodbye
            redis_server.process.proc.wait()  # type: ignore[union-attr]
            down, _ = _degraded_after_requests(client, True, 5.0, statuses)
            assert down, "cache.degraded never became true with Redis killed"
            redis_server.stop()
            redis_server.start()  # the same port: the front keeps its URL
            assert redis_server.port == port
            back, seconds = _degraded_after_requests(client, False, 10.0, statuses)
            assert back, "cache.degraded still true 10 s after Redis came back"
            assert seconds < 5.0  # one cooldown (1 s) and a probe, not a stuck circuit
            assert set(statuses) == {200}, statuses  # answered from the model meanwhile
            cache = client.get("/metrics").json()["cache"]
            assert cache["errors"] >= 1
