"""The sentiment service: one HTTP contract, two backends.

``POST /predict`` with ``{"texts": ["...", ...]}`` (1-32 texts of 1-2,000 characters) answers
``{"model": ..., "labels": [0|1, ...], "scores": [P(positive), ...], "cached": [bool, ...]}``;
bad input is a 422 naming the field, never a crash. ``GET /healthz`` answers when the model is
loaded; ``GET /metrics`` returns counters (requests, cache hits/misses/errors, degraded).
Every answer carries a ``Server-Timing`` header with the stages it went through (tokenise,
cache, inference, postprocess; milliseconds), so a client can split its latency budget.

* **baseline** -- what a typical first service does: FastAPI + the PyTorch FP32 model in the
  server process (``TorchPredictor``).
* **optimised** -- the playbook: the same contract, Rust tokenizer, a Redis cache in front
  (cache-aside, fail-open), INT8 inference on Triton over one long-lived gRPC channel.

Run one with ``python -m reference_system.serving.serve`` (see there).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel, Field

MAX_TEXTS = 32
MAX_CHARS = 2000


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
def _span(timings: dict[str, float], name: str) -> Iterator[None]:
    t0 = time.perf_counter_ns()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + (time.perf_counter_ns() - t0) / 1e6


def _softmax_positive(logits: npt.NDArray[np.float32]) -> list[float]:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return [float(x) for x in (e[:, 1] / e.sum(axis=1))]


class _Counters:
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
        self._counters = _Counters()
        # One model, 2 intra-op threads: concurrent requests would only fight over the cores.
        self._lock = threading.Lock()

    def predict(self, texts: Sequence[str]) -> Answer:
        timings: dict[str, float] = {}
        with self._lock, _span(timings, "inference"):
            prediction = self.predictor.predict(texts)
        with _span(timings, "postprocess"):
            scores = _softmax_positive(prediction.logits)
            labels = [int(x) for x in prediction.labels]
        self._counters.add(requests=1, texts=len(texts))
        return Answer(labels, scores, [False] * len(texts), timings)

    def metrics(self) -> dict[str, Any]:
        return {"backend": self.name, **self._counters.snapshot()}

    def close(self) -> None:
        self.predictor.close()


class _Pending:
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

    def answer(self, counters: _Counters) -> Answer:
        with _span(self.timings, "postprocess"):
            scores = _softmax_positive(self.logits)
        n, missed = len(self.texts), len(self.misses)
        counters.add(requests=1, texts=n, cache_hits=n - missed, cache_misses=missed)
        return Answer(self.labels, scores, self.cached, self.timings)


def _metrics(name: str, counters: _Counters, cache: Any | None) -> dict[str, Any]:
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
    ) -> None:
        self.encode, self.infer, self.cache, self.name = encode, infer, cache, name
        self._close = close
        self._counters = _Counters()

    def predict(self, texts: Sequence[str]) -> Answer:
        p = _Pending(texts)
        if self.cache is not None:
            with _span(p.timings, "cache"):
                p.take_hits(self.cache.get_many(texts))
        if p.misses:
            with _span(p.timings, "tokenise"):
                feeds = self.encode(p.miss_texts)
            with _span(p.timings, "inference"):
                out = self.infer(feeds)
            p.take_inference(out)
            if self.cache is not None:
                with _span(p.timings, "cache"):
                    self.cache.put_many(p.miss_texts, [p.labels[i] for i in p.misses], out)
        return p.answer(self._counters)

    def metrics(self) -> dict[str, Any]:
        return _metrics(self.name, self._counters, self.cache)

    def close(self) -> None:
        if self._close is not None:
            self._close()


class AsyncOptimisedBackend:
    """The same path on asyncio: ``redis.asyncio`` and ``tritonclient.grpc.aio``, awaited on
    uvicorn's event loop: no thread-pool hop per request. (On the 2-core development VM it
    measured the same as the blocking variant, 13.8 vs 13.6 ms p50 for misses at 20 rps:
    there the cores, not the front, set the pace.)

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
        self._counters = _Counters()

    async def start(self) -> None:
        """Make the clients and open their connections before the first request arrives."""
        self.triton, self.cache = self._connect()
        await self.triton.ready()
        if self.cache is not None:
            await self.cache.warm()

    async def predict(self, texts: Sequence[str]) -> Answer:
        if self.triton is None:
            raise RuntimeError("AsyncOptimisedBackend.start() was not awaited")
        p = _Pending(texts)
        if self.cache is not None:
            with _span(p.timings, "cache"):
                p.take_hits(await self.cache.get_many(texts))
        if p.misses:
            with _span(p.timings, "tokenise"):
                feeds = self.encode(p.miss_texts)  # ~0.2 ms of Rust: not worth a thread hop
            with _span(p.timings, "inference"):
                out = await self.triton.infer(feeds)
            p.take_inference(out)
            if self.cache is not None:
                with _span(p.timings, "cache"):
                    await self.cache.put_many(p.miss_texts, [p.labels[i] for i in p.misses], out)
        return p.answer(self._counters)

    def metrics(self) -> dict[str, Any]:
        return _metrics(self.name, self._counters, self.cache)

    async def aclose(self) -> None:
        if self.triton is not None:
            await self.triton.close()
            self.triton = None
        if self.cache is not None:
            await self.cache.aclose()
            self.cache = None

    def close(self) -> None:  # the Backend protocol; the app awaits aclose() instead
        pass


class PredictRequest(BaseModel):
    texts: list[str] = Field(min_length=1, max_length=MAX_TEXTS)

    model_config = {"extra": "forbid"}


class PredictResponse(BaseModel):
    model: str
    labels: list[int]
    scores: list[float]
    cached: list[bool]


def _check_texts(texts: Sequence[str]) -> None:
    for i, text in enumerate(texts):
        if not text.strip() or len(text) > MAX_CHARS:
            raise HTTPException(
                status_code=422,
                detail=f"texts[{i}] has {len(text)} characters; each text needs 1 to "
                f"{MAX_CHARS} non-blank characters",
            )


def _server_timing(timings_ms: dict[str, float]) -> str:
    return ", ".join(f"{k};dur={v:.3f}" for k, v in timings_ms.items())


def _respond(backend: Any, answer: Answer, response: Response) -> PredictResponse:
    response.headers["Server-Timing"] = _server_timing(answer.timings_ms)
    return PredictResponse(
        model=backend.name, labels=answer.labels, scores=answer.scores, cached=answer.cached
    )


def _json_response(backend: Any, answer: Answer, write: Callable[[], Any] | None) -> Response:
    """The answer serialised once by the stdlib encoder (no response-model validation pass),
    with the cache write, if any, run after the body is sent."""
    from starlette.background import BackgroundTask

    body = {
        "model": backend.name,
        "labels": answer.labels,
        "scores": answer.scores,
        "cached": answer.cached,
    }
    return Response(
        content=json.dumps(body, separators=(",", ":")),
        media_type="application/json",
        headers={"Server-Timing": _server_timing(answer.timings_ms)},
        background=None if write is None else BackgroundTask(write),
    )


def create_app(backend: Any, *, freeze_heap: bool = True) -> FastAPI:
    """The FastAPI application around `backend`. A blocking backend's ``predict`` runs in the
    thread pool (``def`` route); an asyncio one's is awaited on the loop (``async def``); the
    co-located one's answer is sent first and its cache write runs after the body."""
    # Here, not at the top: colocated imports this module (a circular import otherwise).
    from reference_system.serving.colocated import ColocatedBackend
    from reference_system.serving.gcstats import GcPauses, freeze_startup_heap

    on_loop = isinstance(backend, AsyncOptimisedBackend | ColocatedBackend)
    pauses = GcPauses()

    @asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        if on_loop:
            await backend.start()
        if freeze_heap:
            freeze_startup_heap()  # see gcstats: full collections stop walking the start-up heap
        pauses.install()
        yield
        pauses.uninstall()
        # close clients before their servers go away
        if on_loop:
            await backend.aclose()
        else:
            backend.close()

    app = FastAPI(title="sentiment", docs_url=None, redoc_url=None, lifespan=lifespan)

    if isinstance(backend, ColocatedBackend):
        colocated = backend

        @app.post("/predict", response_model=PredictResponse)
        async def predict_colocated(request: PredictRequest) -> Response:
            _check_texts(request.texts)
            answer, write = await colocated.predict(request.texts)
            return _json_response(colocated, answer, write)

    elif isinstance(backend, AsyncOptimisedBackend):
        running = backend

        @app.post("/predict", response_model=PredictResponse)
        async def predict_async(request: PredictRequest, response: Response) -> PredictResponse:
            _check_texts(request.texts)
            return _respond(running, await running.predict(request.texts), response)

    else:
        blocking = backend

        @app.post("/predict", response_model=PredictResponse)
        def predict(request: PredictRequest, response: Response) -> PredictResponse:
            _check_texts(request.texts)
            return _respond(blocking, blocking.predict(request.texts), response)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "model": str(backend.name)}

    @app.get("/metrics")
    def metrics() -> dict[str, Any]:
        out: dict[str, Any] = backend.metrics()
        out["gc"] = pauses.snapshot()
        return out

    return app


def parse_server_timing(header: str | None) -> dict[str, float]:
    """``"a;dur=1.5, b;dur=0.2"`` -> ``{"a": 1.5, "b": 0.2}`` (milliseconds)."""
    out: dict[str, float] = {}
    for part in (header or "").split(","):
        name, _, rest = part.strip().partition(";")
        for param in rest.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur" and name:
                try:
                    out[name] = float(value)
                except ValueError:
                    continue
    return out
