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

The backends are in ``backends`` (the co-located one in ``colocated``). Run one with
``python -m reference_system.serving.serve`` (see there).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from reference_system.serving.backends import (
    Answer,
    AsyncOptimisedBackend,
    OptimisedBackend,
)
from reference_system.serving.contract import (
    BODY_TIMEOUT_S,
    MAX_CHARS,
    MAX_TEXTS,
    BadRequest,
    parse_texts,
    read_body,
)
from reference_system.serving.stalls import InjectedStalls

__all__ = ["MAX_CHARS", "MAX_TEXTS", "create_app", "parse_server_timing"]


class PredictResponse(BaseModel):
    """The answer's schema (documentation only: answers are serialised by the stdlib)."""

    model: str
    labels: list[int]
    scores: list[float]
    cached: list[bool]


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
