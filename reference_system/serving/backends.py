"""The sentiment service's backends behind the one HTTP contract (``app``): the baseline
(the PyTorch FP32 model in the server process), the optimised one on Triton (a sync and an
asyncio flavour: Redis cache-aside, fail-open, then INT8 inference over gRPC), and the pieces
the co-located front (``colocated``) shares with them: the stage timer behind
``Server-Timing``, the counters behind ``/metrics``, a request's hits and misses, and the
cache write run after the response is sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt


@dataclass
class Answer:
    labels: list[int]
    scores: list[float]
    cached: list[bool]
    timings_ms: dict[str, float] = field(default_factory=dict)


class Backend(Protocol):
    name: str

    def predict(self, texts: Sequence[str]) -> Answer: ...

    def metrics(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


@contextmanager
def span(timings: dict[str, float], name: str) -> Iterator[None]:
    t0 = time.perf_counter_ns()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + (time.perf_counter_ns() - t0) / 1e6


def _softmax_positive(logits: npt.NDArray[np.float32]) -> list[float]:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return [float(x) for x in (e[:, 1] / e.sum(axis=1))]


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: dict[str, int] = {"requests": 0, "texts": 0}

    def add(self, **counts: int) -> None:
        with self._lock:
            for k, v in counts.items():
                self.values[k] = self.values.get(k, 0) + v

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.values)


class BaselineBackend:
    """PyTorch FP32 in-process (``TorchPredictor``: inference_mode, 2 threads, fast tokenizer)."""

    def __init__(self, predictor: Any) -> None:
        self.predictor = predictor
        self.name = getattr(predictor, "name", "torch-fp32")
        self._counters = Counters()
        # One model, 2 intra-op threads: concurrent requests would only fight over the cores.
        self._lock = threading.Lock()

    def predict(self, texts: Sequence[str]) -> Answer:
        timings: dict[str, float] = {}
        with self._lock, span(timings, "inference"):
            prediction = self.predictor.predict(texts)
        with span(timings, "postprocess"):
            scores = _softmax_positive(prediction.logits)
            labels = [int(x) for x in prediction.labels]
        self._counters.add(requests=1, texts=len(texts))
        return Answer(labels, scores, [False] * len(texts), timings)

    def metrics(self) -> dict[str, Any]:
        return {"backend": self.name, **self._counters.snapshot()}

    def close(self) -> None:
        self.predictor.close()


class Pending:
    """One request on its way through the optimised path: what the cache answered, what is
    left for the model, and the stage timings."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.texts = texts
        self.timings: dict[str, float] = {}
        n = len(texts)
        self.labels: list[int] = [0] * n
        self.logits = np.zeros((n, 2), dtype=np.float32)
        self.cached = [False] * n
        self.misses = list(range(n))

    def take_hits(self, found: Sequence[Any]) -> None:
        for i, hit in enumerate(found):
            if hit is not None:
                self.labels[i] = int(hit.label)
                self.logits[i] = hit.logits
                self.cached[i] = True
        self.misses = [i for i in range(len(self.texts)) if not self.cached[i]]

    @property
    def miss_texts(self) -> list[str]:
        return [self.texts[i] for i in self.misses]

    def take_inference(self, out: npt.NDArray[np.float32]) -> None:
        self.logits[self.misses] = out
        for j, i in enumerate(self.misses):
            self.labels[i] = int(out[j].argmax())

    def answer(self, counters: Counters) -> Answer:
        with span(self.timings, "postprocess"):
            scores = _softmax_positive(self.logits)
        n, missed = len(self.texts), len(self.misses)
        counters.add(requests=1, texts=n, cache_hits=n - missed, cache_misses=missed)
        return Answer(self.labels, scores, self.cached, self.timings)


def front_metrics(name: str, counters: Counters, cache: Any | None) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": name, **counters.snapshot()}
    if cache is not None:
        m = cache.metrics
        out["cache"] = m if isinstance(m, dict) else getattr(m, "__dict__", str(m))
    return out


class OptimisedBackend:
    """Tokenise -> cache (Redis, cache-aside, fail-open) -> Triton gRPC (INT8) for the misses.
    Blocking clients; FastAPI runs it in its thread pool. :class:`AsyncOptimisedBackend` is the
    one the service deploys."""

    def __init__(
        self,
        encode: Callable[[Sequence[str]], dict[str, npt.NDArray[np.int64]]],
        infer: Callable[[dict[str, npt.NDArray[np.int64]]], npt.NDArray[np.float32]],
        cache: Any | None,
        *,
        name: str = "ort-int8-dynamic@triton",
        close: Callable[[], None] | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.encode, self.infer, self.cache, self.name = encode, infer, cache, name
        self._close, self._ready = close, ready
        self._counters = Counters()

    def health(self) -> str | None:
        """None when the model server answers ready, else why not (``/healthz``)."""
        if self._ready is None or self._ready():
            return None
        return "the model server (Triton) is not ready"

    def predict(self, texts: Sequence[str]) -> Answer:
        p = Pending(texts)
        if self.cache is not None:
            with span(p.timings, "cache"):
                p.take_hits(self.cache.get_many(texts))
        if p.misses:
            with span(p.timings, "tokenise"):
                feeds = self.encode(p.miss_texts)
            with span(p.timings, "inference"):
                out = self.infer(feeds)
            p.take_inference(out)
            if self.cache is not None:
                with span(p.timings, "cache"):
                    self.cache.put_many(p.miss_texts, [p.labels[i] for i in p.misses], out)
        return p.answer(self._counters)

    def metrics(self) -> dict[str, Any]:
        return front_metrics(self.name, self._counters, self.cache)

    def close(self) -> None:
        if self._close is not None:
            self._close()


class AsyncOptimisedBackend:
    """The same path on asyncio: ``redis.asyncio`` and ``tritonclient.grpc.aio``, awaited on
    uvicorn's event loop: no thread-pool hop per request. (On 2 cores it measured the same as
    the blocking variant: docs/serving.md.)

    The clients are made by `connect` inside the running loop (gRPC's asyncio channel belongs
    to the loop that made it), at application start-up.
    """

    def __init__(
        self,
        encode: Callable[[Sequence[str]], dict[str, npt.NDArray[np.int64]]],
        connect: Callable[[], tuple[Any, Any | None]],
        *,
        name: str = "ort-int8-dynamic@triton",
    ) -> None:
        self.encode, self._connect, self.name = encode, connect, name
        self.triton: Any = None
        self.cache: Any | None = None
        self._counters = Counters()

    async def start(self) -> None:
        """Make the clients and open their connections before the first request arrives."""
        self.triton, self.cache = self._connect()
        await self.triton.ready()
        if self.cache is not None:
            await self.cache.warm()

    async def health(self) -> str | None:
        """None when Triton and the model answer ready, else why not (``/healthz``)."""
        if self.triton is None:
            return "not started"
        if await self.triton.ready():
            return None
        return f"the model server (Triton at {self.triton.url}) is not ready"

    async def predict(self, texts: Sequence[str]) -> tuple[Answer, Callable[[], Any] | None]:
        """The answer, and the cache write of its misses (if any) to run after the response
        is sent: a client never waits for a Redis SET (the co-located front does the same)."""
        if self.triton is None:
            raise RuntimeError("AsyncOptimisedBackend.start() was not awaited")
        # Tokenising in the loop: the Rust tokenizer is cheaper than a thread hop.
        return await cache_aside(texts, self.cache, self.encode, self.triton.infer, self._counters)

    def metrics(self) -> dict[str, Any]:
        return front_metrics(self.name, self._counters, self.cache)

    async def aclose(self) -> None:
        if self.triton is not None:
            await self.triton.close()
            self.triton = None
        if self.cache is not None:
            await self.cache.aclose()
            self.cache = None

    def close(self) -> None:  # the Backend protocol; the app awaits aclose() instead
        pass


def cache_write(
    cache: Any | None, p: Pending, out: npt.NDArray[np.float32]
) -> Callable[[], Any] | None:
    """The cache write of `p`'s misses, for the front to run after the response is sent (a
    client never waits for a Redis SET); None without a cache."""
    if cache is None:
        return None
    miss_texts, labels = p.miss_texts, [p.labels[i] for i in p.misses]

    async def write() -> None:
        await cache.put_many(miss_texts, labels, out)

    return write


async def cache_aside(
    texts: Sequence[str],
    cache: Any | None,
    encode: Callable[[list[str]], Any],
    infer: Callable[[Any], Awaitable[npt.NDArray[np.float32]]],
    counters: Counters,
) -> tuple[Answer, Callable[[], Any] | None]:
    """An asyncio front's request: the cache's hits (if it has a cache), the model on the
    misses (`encode` in the loop, `infer` awaited), each stage timed for ``Server-Timing``;
    the answer, and the cache write of the misses to run after the response is sent."""
    p = Pending(texts)
    if cache is not None:
        with span(p.timings, "cache"):
            p.take_hits(await cache.get_many(texts))
    write = None
    if p.misses:
        with span(p.timings, "tokenise"):
            feeds = encode(p.miss_texts)
        with span(p.timings, "inference"):
            out = await infer(feeds)
        p.take_inference(out)
        write = cache_write(cache, p, out)
    return p.answer(counters), write
