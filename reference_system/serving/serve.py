"""Run the sentiment service on uvicorn (one process, bound to 127.0.0.1).

    python -m reference_system.serving.serve baseline --port 8000 [--profile quick]
    python -m reference_system.serving.serve optimised --port 8001 \\
        --triton-url 127.0.0.1:8101 [--redis-url redis://127.0.0.1:6379/0] [--profile quick]
    python -m reference_system.serving.serve colocated --port 8002 \\
        [--redis-url redis://127.0.0.1:6379/0] [--profile quick] \\
        [--stall-share 0.03 --stall-ms 150 --stall-seed 1] [--stall-admin]

The model comes from the cached reference build of `--profile` (built if missing). Access
logging is off: synchronous logging on the request path is one of the playbook's pitfalls.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from reference_system.serving.app import create_app
from reference_system.serving.backends import (
    AsyncOptimisedBackend,
    BaselineBackend,
    OptimisedBackend,
)
from reference_system.serving.contract import BODY_TIMEOUT_S


def make_backend(args: argparse.Namespace) -> Any:
    from reference_system.build import build

    artifacts = build(args.profile)
    if args.backend == "baseline":
        return BaselineBackend(artifacts.predictor("torch-fp32"))

    if args.backend == "colocated":
        return _colocated(args, artifacts)

    from reference_system.predictors import Encoder

    encode = Encoder(artifacts.tokenizer_dir)
    version = artifacts.keys["quantize_dynamic"]
    deadline_s = args.deadline_ms / 1000
    if args.blocking_clients:
        from reference_system.serving.triton_client import TritonGrpcClient

        client = TritonGrpcClient(args.triton_url, model=args.triton_model, timeout_s=deadline_s)
        cache = None
        if args.redis_url:
            from reference_system.serving.prediction_cache import PredictionCache, connect

            cache = PredictionCache(connect(args.redis_url), version, ttl_s=args.cache_ttl_s)
        return OptimisedBackend(encode, client.infer, cache, close=client.close, ready=client.ready)

    def connect_clients() -> tuple[Any, Any]:
        from reference_system.serving.triton_client import AsyncTritonGrpcClient

        triton = AsyncTritonGrpcClient(
            args.triton_url, model=args.triton_model, timeout_s=deadline_s
        )
        if not args.redis_url:
            return triton, None
        from reference_system.serving.prediction_cache import AsyncPredictionCache, connect_async

        cache = AsyncPredictionCache(connect_async(args.redis_url), version, ttl_s=args.cache_ttl_s)
        return triton, cache

    return AsyncOptimisedBackend(encode, connect_clients)


def _colocated(args: argparse.Namespace, artifacts: Any) -> Any:
    from reference_system.serving.colocated import ColocatedBackend

    # The cache key carries the model's version: the student's answers are not the teacher's.
    step, path, name = {
        "int8": ("quantize_dynamic", artifacts.onnx_int8_dynamic, "ort-int8-dynamic@colocated"),
        "student": ("distill_int8", artifacts.onnx_int8_student, "ort-int8-student@colocated"),
    }[args.model]
    version = artifacts.keys[step]

    def connect_cache() -> Any:
        if not args.redis_url:
            return None
        from reference_system.serving.prediction_cache import AsyncPredictionCache, connect_async

        return AsyncPredictionCache(connect_async(args.redis_url), version, ttl_s=args.cache_ttl_s)

    return ColocatedBackend(
        path,
        artifacts.tokenizer_dir,
        connect_cache,
        name=name,
        intra_op_threads=args.intra_op_threads,
        allow_spinning=not args.no_spinning,
        inference=args.inference,
        keep_warm_ms=args.keep_warm_ms,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m reference_system.serving.serve")
    parser.add_argument("backend", choices=("baseline", "optimised", "colocated"))
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", type=int, help="bind 127.0.0.1 (or --host) on this port")
    where.add_argument(
        "--fd", type=int, help="serve on this inherited, already listening TCP socket"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--profile", default="quick", choices=("quick", "full"))
    parser.add_argument("--triton-url", help="host:port of Triton's gRPC endpoint")
    parser.add_argument("--triton-model", default="sentiment")
    parser.add_argument("--redis-url", help="redis://host:port/db; omit to run without cache")
    parser.add_argument("--cache-ttl-s", type=int, default=3600)
    parser.add_argument(
        "--deadline-ms", type=float, default=1000.0, help="per-request deadline of the Triton call"
    )
    parser.add_argument(
        "--blocking-clients",
        action="store_true",
        help="optimised: blocking Redis and gRPC clients in FastAPI's thread pool instead of "
        "asyncio ones on the event loop (for comparison)",
    )
    parser.add_argument(
        "--intra-op-threads", type=int, default=1, help="colocated: ORT intra-op threads"
    )
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="do not gc.freeze() the start-up heap (for comparison; see docs/serving.md)",
    )
    parser.add_argument(
        "--model",
        choices=("int8", "student"),
        default="int8",
        help="colocated: the 6-layer INT8 model or the distilled 3-layer INT8 student",
    )
    parser.add_argument(
        "--no-spinning", action="store_true", help="colocated: ORT threads do not spin when idle"
    )
    parser.add_argument(
        "--inference",
        choices=("inline", "thread"),
        default="inline",
        help="colocated: run the model on the event loop (inline) or on one dedicated thread",
    )
    parser.add_argument(
        "--keep-warm-ms",
        type=float,
        default=0.0,
        help="colocated: run the model on a fixed text whenever it was idle this long (0: off)",
    )
    parser.add_argument(
        "--body-timeout-s",
        type=float,
        default=BODY_TIMEOUT_S,
        help=f"answer 408 to a body not complete within this many seconds (default "
        f"{BODY_TIMEOUT_S:g}; 0.05 to 300)",
    )
    stall = parser.add_argument_group(
        "injected tail (colocated only; off by default; see reference_system.serving.stalls)"
    )
    stall.add_argument(
        "--stall-share", type=float, default=0.0, help="share of requests stalled, 0 to 1"
    )
    stall.add_argument("--stall-ms", type=float, default=0.0, help="how long a stall lasts, ms")
    stall.add_argument("--stall-seed", type=int, default=0, help="seed of the stall draw")
    stall.add_argument(
        "--stall-admin",
        action="store_true",
        help="add POST /admin/stalls to change the three at run time",
    )
    args = parser.parse_args(argv)
    stalls = None
    if args.stall_share or args.stall_ms or args.stall_admin or args.stall_seed:
        if args.backend != "colocated":
            parser.error("--stall-* options are for the colocated front only")
        from reference_system.serving.stalls import InjectedStalls

        try:
            stalls = InjectedStalls(args.stall_share, args.stall_ms, args.stall_seed)
        except ValueError as exc:
            parser.error(str(exc))
    if not 0.05 <= args.body_timeout_s <= 300:  # also refuses nan
        parser.error(
            f"--body-timeout-s {args.body_timeout_s!r} is not valid; expected seconds from "
            "0.05 to 300"
        )
    if args.backend == "optimised" and not args.triton_url:
        parser.error("optimised needs --triton-url HOST:PORT (Triton's gRPC endpoint)")

    import uvicorn

    app = create_app(
        make_backend(args),
        freeze_heap=not args.no_gc_freeze,
        body_timeout_s=args.body_timeout_s,
        stalls=stalls,
        stall_admin=args.stall_admin,
    )
    # uvloop and httptools when installed (requirements/reference.txt pins both): the C event
    # loop and HTTP parser are cheaper per request (docs/serving.md).
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port or 0,
        log_level="warning",
        access_log=False,
        workers=1,
        loop="auto",
        http="auto",
    )
    server = uvicorn.Server(config)
    if args.fd is None:
        server.run()
    else:
        import socket

        # socket(fileno=...) reads the socket's real family (uvicorn's own --fd assumes a
        # unix socket, and then skips TCP_NODELAY on every connection).
        server.run(sockets=[socket.socket(fileno=args.fd)])


if __name__ == "__main__":
    main()
