"""The sentiment service: one HTTP contract, three backends.

``POST /predict`` with ``{"texts": ["...", ...]}`` (1-32 texts of 1-2,000 characters) answers
``{"model": ..., "labels": [0|1, ...], "scores": [P(positive), ...], "cached": [bool, ...]}``.
Every answer carries a ``Server-Timing`` header with the stages it went through (tokenise,
cache, inference, postprocess; milliseconds), so a client can split its latency budget.
``GET /metrics`` returns counters (requests, cache hits/misses/errors, degraded).

Errors are JSON, ``{"error": CODE, "detail": "what was wrong and what is valid"}``, and the
service keeps serving:

- **the request** (:mod:`~reference_system.serving.contract`): 413 ``body_too_large`` (over
  1 MiB, refused from its Content-Length before it is read), 408 ``body_timeout`` (not all
  there within 5 s), 422 for everything else (not UTF-8, not JSON, not ``{"texts": [...]}``,
  0 or over 32 texts, a text that is not a string, blank, a lone surrogate, or over 2,000
  characters as sent or once NFKC-normalised);
- **the model server** (Triton, optimised front only): 503 ``model_unavailable`` with
  ``Retry-After: 1`` (nothing answers: down, restarting, model not loaded), 504
  ``model_timeout`` (the call passed ``--deadline-ms``), 502 ``model_error`` (Triton refused
  or failed the request). Never a 500 for either.

``GET /healthz`` is 200 ``{"status": "ok"}`` when the front can answer, 503
``{"status": "unavailable", "detail": ...}`` when it cannot (the optimised front asks Triton
whether the server and the model are ready on every call).

* **baseline** -- what a typical first service does: FastAPI + the PyTorch FP32 model in the
  server process (``TorchPredictor``).
* **optimised** -- the playbook: the same contract, Rust tokenizer, a Redis cache in front
  (cache-aside, fail-open), INT8 inference on Triton over one long-lived gRPC channel.

Run one with ``python -m reference_system.serving.serve`` (see there).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from reference_system.serving.contract import (
    BODY_TIMEOUT_S,
    MAX_CHARS,
    MAX_TEXTS,
    BadRequest,
    parse_texts,
    read_body,
)
from reference_system.serving.stalls import InjectedStalls

__all__ = [
    "MAX_CHARS",
    "MAX_TEXTS",
    "AsyncOptimisedBackend",
    "BaselineBackend",
    "OptimisedBackend",
    "create_app",
    "parse_server_timing",
]


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
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.encode, self.infer, self.cache, self.name = encode, infer, cache, name
        self._close, self._ready = close, ready
        self._counters = _Counters()

    def health(self) -> str | None:
        """None when the model server answers ready, else why not (``/healthz``)."""
        if self._ready is None or self._ready():
            return None
        return "the model server (Triton) is not ready"

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
        self._counters = _Counters()

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
        p = _Pending(texts)
        if self.cache is not None:
            with _span(p.timings, "cache"):
                p.take_hits(await self.cache.get_many(texts))
        write = None
        if p.misses:
            with _span(p.timings, "tokenise"):
                feeds = self.encode(p.miss_texts)  # Rust: cheaper than a thread hop
            with _span(p.timings, "inference"):
                out = await self.triton.infer(feeds)
            p.take_inference(out)
            write = _cache_write(self.cache, p, out)
        return p.answer(self._counters), write

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


class PredictResponse(BaseModel):
    """The answer's schema (documentation only: answers are serialised by the stdlib)."""

    model: str
    labels: list[int]
    scores: list[float]
    cached: list[bool]


def _cache_write(
    cache: Any | None, p: _Pending, out: npt.NDArray[np.float32]
) -> Callable[[], Any] | None:
    """The cache write of `p`'s misses, for the front to run after the response is sent (a
    client never waits for a Redis SET); None without a cache."""
    if cache is None:
        return None
    miss_texts, labels = p.miss_texts, [p.labels[i] for i in p.misses]

    async def write() -> None:
        await cache.put_many(miss_texts, labels, out)

    return write


def _server_timing(timings_ms: dict[str, float]) -> str:
    return ", ".join(f"{k};dur={v:.3f}" for k, v in timings_ms.items())


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


async def _bad_request(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    return exc.response()


async def _model_server_error(_: Request, exc: Exception) -> Response:
    """What the model server's failures become (see the module docstring): the client learns
    whether retrying can help (503: the server is down, retry after a second; 504: it was too
    slow for the deadline) or not (502: it refused or failed this request)."""
    from reference_system.serving.triton_client import TritonTimeout, TritonUnavailable

    status, error = 502, "model_error"
    if isinstance(exc, TritonUnavailable):
        status, error = 503, "model_unavailable"
    elif isinstance(exc, TritonTimeout):
        status, error = 504, "model_timeout"
    headers = {"Retry-After": "1"} if status == 503 else None
    body = json.dumps({"error": error, "detail": str(exc)})
    return Response(body, status, headers=headers, media_type="application/json")


def create_app(
    backend: Any,
    *,
    freeze_heap: bool = True,
    body_timeout_s: float = BODY_TIMEOUT_S,
    stalls: InjectedStalls | None = None,
    stall_admin: bool = False,
) -> FastAPI:
    """The FastAPI application around `backend`. A blocking backend's ``predict`` runs in the
    thread pool (``def`` route); an asyncio one's is awaited on the loop (``async def``); the
    asyncio and co-located ones send the answer first and run its cache write after the body
    (the blocking optimised one, kept for comparison, writes before answering). A body
    not complete within `body_timeout_s` gets a 408 (``serve.py --body-timeout-s``).

    `stalls` (co-located front only) is an injected tail (:mod:`.stalls`); `stall_admin` adds
    ``POST /admin/stalls`` to switch it at run time."""
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
    app.add_exception_handler(BadRequest, _bad_request)
    if isinstance(backend, OptimisedBackend | AsyncOptimisedBackend):
        from reference_system.serving.triton_client import TritonError

        app.add_exception_handler(TritonError, _model_server_error)

    if (stalls is not None or stall_admin) and not isinstance(backend, ColocatedBackend):
        raise ValueError("injected stalls are a feature of the co-located front only")
    if isinstance(backend, ColocatedBackend):
        colocated = backend
        tail = stalls or InjectedStalls()

        @app.post("/predict", response_model=PredictResponse)
        async def predict_colocated(request: Request) -> Response:
            texts = parse_texts(await read_body(request, timeout_s=body_timeout_s))
            stall_s = tail.draw()
            if stall_s:
                await asyncio.sleep(stall_s)  # this request only: the loop serves the others
            answer, write = await colocated.predict(texts)
            if stall_s:
                answer.timings_ms["stall"] = stall_s * 1000
            return _json_response(colocated, answer, write)

        if stall_admin:

            @app.post("/admin/stalls")
            async def configure_stalls(request: Request) -> Response:
                try:
                    body = json.loads(await read_body(request, timeout_s=body_timeout_s))
                    if not isinstance(body, dict) or set(body) - {"share", "ms", "seed"}:
                        raise ValueError(
                            f"expected an object with share, ms and/or seed, got {body!r}"
                        )
                    settings = tail.configure(**body)
                except RecursionError:  # deep nesting: a 4xx like /predict's, never a 500
                    detail = "the body nests too deeply to be read; send a flat JSON object"
                    error = json.dumps({"error": "invalid_json", "detail": detail})
                    return Response(error, 422, media_type="application/json")
                except ValueError as exc:  # json.JSONDecodeError is one
                    error = json.dumps({"error": "invalid_field", "detail": str(exc)})
                    return Response(error, 422, media_type="application/json")
                return Response(json.dumps(settings), media_type="application/json")

    elif isinstance(backend, AsyncOptimisedBackend):
        running = backend

        @app.post("/predict", response_model=PredictResponse)
        async def predict_async(request: Request) -> Response:
            texts = parse_texts(await read_body(request, timeout_s=body_timeout_s))
            answer, write = await running.predict(texts)
            return _json_response(running, answer, write)

    else:
        blocking = backend

        @app.post("/predict", response_model=PredictResponse)
        async def predict(request: Request) -> Response:
            # The body is read on the loop: no thread is held while a client trickles it.
            texts = parse_texts(await read_body(request, timeout_s=body_timeout_s))
            answer = await run_in_threadpool(blocking.predict, texts)
            return _json_response(blocking, answer, None)

    @app.get("/healthz")
    async def healthz() -> Response:
        health = getattr(backend, "health", None)  # the in-process models have none
        if health is None:
            reason = None
        elif on_loop:
            reason = await health()
        else:  # a blocking check: off the loop
            reason = await run_in_threadpool(health)
        body: dict[str, str] = {"status": "ok", "model": str(backend.name)}
        if reason is not None:
            body.update(status="unavailable", detail=str(reason))
        return Response(
            json.dumps(body), 200 if reason is None else 503, media_type="application/json"
        )

    @app.get("/metrics")
    def metrics() -> dict[str, Any]:
        out: dict[str, Any] = backend.metrics()
        out["gc"] = pauses.snapshot()
        if isinstance(backend, ColocatedBackend):
            out["stalls"] = tail.snapshot()
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
