"""Cache-aside in front of inference: look texts up in Redis, infer only the misses, write back.

    client = connect(server.url)                      # 20 ms timeouts, no retries
    cache = PredictionCache(client, model_version="minilm-int8-3f2a")
    cached = cache.get_many(texts)                    # one MGET
    todo = [t for t, c in zip(texts, cached) if c is None]
    prediction = predictor.predict(todo)
    cache.put_many(todo, prediction.labels, prediction.logits)   # one pipelined round trip

Keys are ``sentiment:{model_version}:{sha256(normalise(text))[:32 hex]}``: a new model
version never reads the old one's answers. Values are 9 bytes, ``struct`` ``<Bff`` (label,
logit 0, logit 1 as float32), never pickle: a cache must not be a code-execution channel.

It fails open: a Redis error or timeout makes a lookup all-misses and a write nothing, is
counted, and opens a circuit for ``cooldown_s`` in which Redis is not called (one timeout per
cooldown, not per request); the first call after it probes. ``AsyncPredictionCache`` is the
``redis.asyncio`` twin."""

from __future__ import annotations

import hashlib
import struct
import threading
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, SupportsFloat, SupportsInt

if TYPE_CHECKING:
    import redis
    import redis.asyncio

KEY_PREFIX = "sentiment"
FORMAT_VERSION = 1
# Format 1: label (uint8), logit 0 and logit 1 (little-endian float32). A layout change must
# change the length or FORMAT_VERSION's key space; decode() rejects any other length.
_VALUE = struct.Struct("<Bff")
VALUE_SIZE = _VALUE.size  # 9
NUM_LABELS = 2


class CacheFormatError(ValueError):
    """A cached value is not in the format this code writes."""


@dataclass(frozen=True)
class CachedPrediction:
    """One cached answer: the label and both logits, at float32 precision."""

    label: int
    logits: tuple[float, float]


@dataclass(frozen=True)
class CacheMetrics:
    """A snapshot of the cache's counters.

    ``hits``/``misses`` count texts (a text returned as a miss because Redis failed or the
    circuit was open is a miss: the caller must infer it). ``errors`` counts failed round
    trips, ``skipped_while_open`` calls that did not touch Redis because the circuit was open,
    ``corrupt`` values that failed :func:`decode`. ``degraded`` is True from a failure until a
    call succeeds again.
    """

    hits: int = 0
    misses: int = 0
    errors: int = 0
    skipped_while_open: int = 0
    corrupt: int = 0
    degraded: bool = False
    last_error: str = ""

    @property
    def hit_rate(self) -> float:
        looked_up = self.hits + self.misses
        return self.hits / looked_up if looked_up else 0.0


def normalise(text: str) -> str:
    """The text as the cache sees it: NFKC, stripped, inner whitespace runs as one space,
    lowercased. The model is uncased (its tokenizer lowercases and splits on whitespace), so
    this never changes a prediction, only raises the hit rate; NFKC folds compatibility forms
    (full-width letters, ligatures) that mean the same text.

    >>> normalise("  A  Fine\\tFILM ")
    'a fine film'
    """
    return " ".join(unicodedata.normalize("NFKC", text).split()).lower()


def cache_key(model_version: str, text: str) -> str:
    """``sentiment:{model_version}:{first 32 hex of sha256(normalise(text))}``.

    128 bits of hash: collisions are not a practical concern, and the key length is fixed
    whatever the text's length.

    >>> cache_key("v1", "a fine film") == cache_key("v1", "  A  Fine FILM ")
    True
    """
    digest = hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()[:32]
    return f"{KEY_PREFIX}:{model_version}:{digest}"


def encode(label: SupportsInt, logits: Iterable[SupportsFloat]) -> bytes:
    """9 bytes: ``struct.pack("<Bff", label, logit0, logit1)``.

    >>> len(encode(1, (-0.5, 2.25)))
    9
    """
    label_int = int(label)
    pair = [float(x) for x in logits]
    if not 0 <= label_int < NUM_LABELS:
        raise ValueError(f"label must be in 0..{NUM_LABELS - 1}, got {label_int}")
    if len(pair) != NUM_LABELS:
        raise ValueError(f"expected {NUM_LABELS} logits, got {len(pair)}: {pair!r}")
    return _VALUE.pack(label_int, pair[0], pair[1])


def decode(value: bytes) -> CachedPrediction:
    """The inverse of :func:`encode`; raises :class:`CacheFormatError` on anything else.

    >>> decode(encode(1, (-0.5, 2.25)))
    CachedPrediction(label=1, logits=(-0.5, 2.25))
    """
    if len(value) != VALUE_SIZE:
        raise CacheFormatError(
            f"cached value is {len(value)} bytes, format {FORMAT_VERSION} is {VALUE_SIZE} "
            f"(<Bff): written by other code or another format version; it is treated as a "
            f"miss and will be overwritten"
        )
    label, logit0, logit1 = _VALUE.unpack(value)
    if label >= NUM_LABELS:
        raise CacheFormatError(f"cached label {label} is not in 0..{NUM_LABELS - 1}")
    return CachedPrediction(label=label, logits=(logit0, logit1))


def connect(url: str, timeout_s: float = 0.02) -> redis.Redis:
    """A redis-py client for a cache on the latency path: short timeouts, no retries.

    redis-py 8's default client retries a failed command 10 times with backoff: against a
    Redis that is down, one GET takes seconds instead of failing at once (docs/serving.md,
    "Facts measured on the 2-core development VM"). Here a connect or read that exceeds
    ``timeout_s`` fails once and the cache fails open.
    """
    import redis
    from redis.retry import Retry

    return redis.Redis.from_url(url, **_latency_path_options(Retry, timeout_s))


def _latency_path_options(retry_class: Any, timeout_s: float) -> dict[str, Any]:
    """What both clients share: `timeout_s` to connect and to read, no retries, no health
    checks (redis-py's sync and asyncio ``Retry`` classes differ, hence the parameter)."""
    from redis.backoff import NoBackoff

    return {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": retry_class(NoBackoff(), 0),
        "retry_on_timeout": False,
        "health_check_interval": 0,
    }


def connect_async(url: str, timeout_s: float = 0.02) -> redis.asyncio.Redis:
    """The ``redis.asyncio`` client with :func:`connect`'s settings (short timeouts, no
    retries), for :class:`AsyncPredictionCache`."""
    import redis.asyncio
    from redis.asyncio.retry import Retry

    return redis.asyncio.Redis.from_url(url, **_latency_path_options(Retry, timeout_s))


class _CacheCore:
    """What the sync and asyncio caches share: validation, keys, (de)coding, counters and the
    circuit breaker. Only the Redis round trips differ between the two."""

    def __init__(
        self,
        client: Any,
        model_version: str,
        *,
        ttl_s: int = 3600,
        cooldown_s: float = 1.0,
    ) -> None:
        if not model_version or any(c.isspace() for c in model_version):
            raise ValueError(
                f"model_version must be non-empty without whitespace, got {model_version!r}"
            )
        if client.get_connection_kwargs().get("decode_responses"):
            raise ValueError(
                f"{type(self).__name__} needs a client with decode_responses=False: its values "
                "are binary. Build the client with connect(url) or connect_async(url)."
            )
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or ttl_s <= 0:
            raise ValueError(f"ttl_s must be a positive int of seconds, got {ttl_s!r}")
        if cooldown_s < 0:
            raise ValueError(f"cooldown_s must be >= 0, got {cooldown_s!r}")
        from redis.exceptions import RedisError

        # What fails open: every redis-py error (connection, timeout, response) and socket
        # errors (asyncio's TimeoutError is an OSError). Anything else propagates: a bug.
        self._redis_failures: tuple[type[BaseException], ...] = (RedisError, OSError)
        self.client, self.model_version = client, model_version
        self.ttl_s, self.cooldown_s = ttl_s, cooldown_s
        self._lock = threading.Lock()
        self._hits = self._misses = self._errors = self._skipped = self._corrupt = 0
        self._last_error = ""
        self._open_until: float | None = None  # monotonic seconds; None: circuit closed
        self._probing = False

    def key(self, text: str) -> str:
        return cache_key(self.model_version, text)

    def _decoded(self, raw: Sequence[Any]) -> list[CachedPrediction | None]:
        """MGET's answer as predictions; counts hits, misses and corrupt values."""
        results: list[CachedPrediction | None] = []
        corrupt = 0
        for value in raw:
            prediction = None
            if isinstance(value, bytes):
                try:
                    prediction = decode(value)
                except CacheFormatError:
                    corrupt += 1
            results.append(prediction)
        hits = sum(r is not None for r in results)
        self._count(hits=hits, misses=len(results) - hits, corrupt=corrupt)
        return results

    def _set_pipeline(self, texts: Sequence[str], values: Sequence[bytes]) -> Any:
        """``SET key value EX ttl_s`` per text, queued in one non-transactional pipeline."""
        pipe = self.client.pipeline(transaction=False)
        for text, value in zip(texts, values, strict=True):
            pipe.set(self.key(text), value, ex=self.ttl_s)
        return pipe

    @staticmethod
    def _encoded(
        texts: Sequence[str],
        labels: Iterable[SupportsInt],
        logits: Iterable[Iterable[SupportsFloat]],
    ) -> list[bytes]:
        label_list, logit_list = list(labels), list(logits)
        if not len(texts) == len(label_list) == len(logit_list):
            raise ValueError(
                f"put_many needs one label and one logit pair per text; got {len(texts)} "
                f"texts, {len(label_list)} labels, {len(logit_list)} logit pairs"
            )
        return [encode(label, pair) for label, pair in zip(label_list, logit_list, strict=True)]

    @property
    def metrics(self) -> CacheMetrics:
        with self._lock:
            return CacheMetrics(
                hits=self._hits,
                misses=self._misses,
                errors=self._errors,
                skipped_while_open=self._skipped,
                corrupt=self._corrupt,
                degraded=self._open_until is not None,
                last_error=self._last_error,
            )

    def _admit(self) -> bool:
        """May this call use Redis? No while the circuit is open or another call is probing."""
        with self._lock:
            if self._open_until is None:
                return True
            if self._probing or time.monotonic() < self._open_until:
                self._skipped += 1
                return False
            self._probing = True  # half-open: this call is the one probe
            return True

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self._errors += 1
            self._last_error = f"{type(exc).__name__}: {exc}"
            self._open_until = time.monotonic() + self.cooldown_s
            self._probing = False

    def _abandoned(self, exc: BaseException) -> None:
        """A call ended with something other than a Redis failure (a bug, or a request
        cancelled mid-call). If it was the half-open probe, the probe is released and the
        circuit stays open for another cooldown, so a later call probes again: a probe that
        never reports must not leave the circuit half-open for ever."""
        with self._lock:
            if self._probing:
                self._probing = False
                self._open_until = time.monotonic() + self.cooldown_s
                self._last_error = f"probe abandoned: {type(exc).__name__}: {exc}"

    def _succeeded(self) -> None:
        with self._lock:
            self._open_until = None
            self._probing = False

    def _count(self, *, hits: int = 0, misses: int = 0, corrupt: int = 0) -> None:
        with self._lock:
            self._hits += hits
            self._misses += misses
            self._corrupt += corrupt

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model_version={self.model_version!r}, {self.metrics})"


class PredictionCache(_CacheCore):
    """Cache-aside for sentiment predictions, failing open with a circuit breaker.

    Thread-safe: the counters and the circuit sit behind a lock, and redis-py's client draws
    connections from a thread-safe pool.

    >>> cache = PredictionCache(connect(url), "minilm-int8-3f2a", ttl_s=3600)  # doctest: +SKIP
    >>> cache.get_many(["a fine film"])  # doctest: +SKIP
    [None]
    """

    def get_many(self, texts: Sequence[str]) -> list[CachedPrediction | None]:
        """One MGET for all texts; ``None`` where a text is not cached (or Redis failed)."""
        if not texts:
            return []
        if not self._admit():
            self._count(misses=len(texts))
            return [None] * len(texts)
        try:
            raw = self.client.mget([self.key(t) for t in texts])
        except self._redis_failures as exc:
            self._failed(exc)
            self._count(misses=len(texts))
            return [None] * len(texts)
        except BaseException as exc:
            self._abandoned(exc)
            raise
        self._succeeded()
        return self._decoded(raw)

    def put_many(
        self,
        texts: Sequence[str],
        labels: Iterable[SupportsInt],
        logits: Iterable[Iterable[SupportsFloat]],
    ) -> None:
        """Store each text's label and logits with ``SET key value EX ttl_s``, pipelined into
        one round trip. Accepts ``Prediction.labels``/``.logits`` arrays as they are."""
        values = self._encoded(texts, labels, logits)
        if not values or not self._admit():
            return
        try:
            self._set_pipeline(texts, values).execute()
        except self._redis_failures as exc:
            self._failed(exc)
            return
        except BaseException as exc:
            self._abandoned(exc)
            raise
        self._succeeded()


class AsyncPredictionCache(_CacheCore):
    """The asyncio twin of :class:`PredictionCache` on ``redis.asyncio`` (same keys, values,
    fail-open rules and circuit). Use it from one event loop; build the client with
    :func:`connect_async`.

    >>> cache = AsyncPredictionCache(connect_async(url), "minilm-int8-3f2a")  # doctest: +SKIP
    >>> await cache.get_many(["a fine film"])  # doctest: +SKIP
    [None]
    """

    async def get_many(self, texts: Sequence[str]) -> list[CachedPrediction | None]:
        """One MGET for all texts; ``None`` where a text is not cached (or Redis failed)."""
        if not texts:
            return []
        if not self._admit():
            self._count(misses=len(texts))
            return [None] * len(texts)
        try:
            raw = await self.client.mget([self.key(t) for t in texts])
        except self._redis_failures as exc:
            self._failed(exc)
            self._count(misses=len(texts))
            return [None] * len(texts)
        except BaseException as exc:  # e.g. CancelledError: the request went away
            self._abandoned(exc)
            raise
        self._succeeded()
        return self._decoded(raw)

    async def put_many(
        self,
        texts: Sequence[str],
        labels: Iterable[SupportsInt],
        logits: Iterable[Iterable[SupportsFloat]],
    ) -> None:
        """``SET key value EX ttl_s`` per text, pipelined into one round trip."""
        values = self._encoded(texts, labels, logits)
        if not values or not self._admit():
            return
        try:
            await self._set_pipeline(texts, values).execute()
        except self._redis_failures as exc:
            self._failed(exc)
            return
        except BaseException as exc:
            self._abandoned(exc)
            raise
        self._succeeded()

    async def warm(self) -> bool:
        """Open the first pooled connection now (a PING), not on the first request. False,
        with nothing counted, when Redis does not answer: requests then fail open as usual."""
        try:
            await self.client.ping()
        except self._redis_failures:
            return False
        return True

    async def aclose(self) -> None:
        await self.client.aclose()
