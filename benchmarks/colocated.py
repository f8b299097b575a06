"""What each lever buys the co-located front, from one run in alternated blocks.

    .venv/bin/python benchmarks/colocated.py [--profile quick|full] [--rate 20]
        [--seconds 20] [--rounds 4] [--repeat-ratio 0.5] [--variants NAME,NAME,...]

Every variant is a real front process on loopback (uvicorn, the same Redis); the load is the
SLO tests' (open loop, Poisson arrivals at `--rate`, latency from the intended start, half the
requests repeating one of 50 popular reviews, the rest new to the cache). The variants take
turns in blocks of `--seconds` of timed load, their order reversed every round, so the shared
host's drift hits them alike; each variant's samples are pooled over the rounds.

Variants (each changes one thing against ``default``: INT8 6-layer model on the event loop,
1 ORT thread, spinning on, the raw-socket load-generator client of
``reference_system.serving.loadgen_http``):

- ``default``, ``thread`` (the model on one dedicated thread), ``ort2`` (2 ORT threads),
  ``nospin`` (ORT threads do not spin), ``student`` (the distilled 3-layer INT8 model),
  ``httpx`` (the load generator on httpx), ``triton`` (the Triton front: the same cache,
  the model one gRPC hop away);
- against ``student``: ``warm5`` / ``warm2`` (``--keep-warm-ms`` 5 / 2), and ``httplib``
  (``warm5`` with the load generator on ``http.client``).

Only the measured variant's servers run during its block; the others are paused (SIGSTOP).

Per variant: p50 and p99 of all requests, and of hits and misses apart (client-side, from
each request's actual start), the stages' p50 / p99 (Server-Timing) and the error count.
Do not run this beside another benchmark or the SLO suite: 2 cores are shared.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import platform
import random
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from pytest_latency.core.env import cpu_model
from pytest_latency.core.runner import measure
from pytest_latency.core.samples import Samples
from pytest_latency.core.spec import Spec

SERVER_ARGS: dict[str, list[str]] = {
    "default": [],
    "thread": ["--inference", "thread"],
    "ort2": ["--intra-op-threads", "2"],
    "nospin": ["--no-spinning"],
    "student": ["--model", "student"],
    "warm5": ["--model", "student", "--keep-warm-ms", "5"],
    "warm2": ["--model", "student", "--keep-warm-ms", "2"],
    "httplib": ["--model", "student", "--keep-warm-ms", "5"],
    "httpx": [],
}
VARIANTS = (*SERVER_ARGS, "triton")
# The load generator's client per variant: raw sockets (reference_system.serving.loadgen_http)
# unless named here.
CLIENTS = {"httpx": "httpx", "httplib": "httplib"}


def workload(texts: Sequence[str], repeat_ratio: float, seed: int) -> Iterator[str]:
    rng = random.Random(seed)
    hot = list(texts[:50])
    tag = f"{time.time_ns():x}"
    fresh = (f"{t} ({tag}-{i})" for i, t in enumerate(itertools.cycle(texts[50:])))
    while True:
        yield rng.choice(hot) if rng.random() < repeat_ratio else next(fresh)


class Caller:
    """Posts one review per call on a keep-alive connection per load thread (http.client or
    httpx, both with TCP_NODELAY); keeps each request's latency, cache flag and stages."""

    def __init__(self, url: str, texts: Iterator[str], *, client: str = "raw") -> None:
        from reference_system.serving.loadgen_http import KeepAliveClient

        host, port = url.removeprefix("http://").split(":")
        self.url, self.host, self.port, self.texts = url, host, int(port), texts
        self.use_httpx, self.client = client == "httpx", client
        self.raw = KeepAliveClient(url, want=("server-timing",))
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[Any] = []
        self.split: dict[bool, list[float]] = {True: [], False: []}
        self.stages: dict[str, list[float]] = {}

    def _post(self, body: bytes) -> tuple[bytes, str | None]:
        if self.client == "raw":
            r = self.raw.post("/predict", body)
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}")
            return r.body, r.headers.get("server-timing")
        conn = getattr(self._local, "conn", None)
        if self.use_httpx:
            if conn is None:
                import httpx

                transport = httpx.HTTPTransport(
                    socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
                )
                conn = self._local.conn = httpx.Client(
                    base_url=self.url, timeout=5.0, transport=transport
                )
                with self._lock:
                    self._open.append(conn)
            r = conn.post("/predict", content=body, headers={"content-type": "application/json"})
            r.raise_for_status()
            return r.content, r.headers.get("server-timing")
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self.host, self.port, timeout=5)
            conn.connect()
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.used = False
            with self._lock:
                self._open.append(conn)
        try:
            conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
        except (http.client.RemoteDisconnected, BrokenPipeError):
            conn.close()
            self._local.conn = None
            if not self._local.used:
                raise
            return self._post(body)  # the server closed an idle kept-alive connection
        self._local.used = True
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
        return payload, response.getheader("server-timing")

    def __call__(self) -> None:
        with self._lock:
            text = next(self.texts)
        t0 = time.perf_counter_ns()
        payload, timing = self._post(json.dumps({"texts": [text]}).encode())
        ms = (time.perf_counter_ns() - t0) / 1e6
        from reference_system.serving.app import parse_server_timing

        cached = bool(json.loads(payload)["cached"][0])
        with self._lock:
            self.split[cached].append(ms)
            for name, dur in parse_server_timing(timing).items():
                self.stages.setdefault(name, []).append(dur)

    def close(self) -> None:
        self.raw.close()
        for conn in self._open:
            conn.close()


def run(call: Callable[[], Any], seconds: float, rate: float) -> Samples:
    spec = Spec.from_kwargs(
        p99_ms=1e9,  # a target nothing fails: the whole block, not a decision
        warmup=max(10, int(rate)),
        min_samples=10**7,
        max_samples=10**7,
        max_time_s=seconds,
        max_error_rate=0.99,
        rate_rps=rate,
    ).resolved({})
    return measure(call, spec=spec).samples


@contextmanager
def paused(pids: Sequence[int]) -> Iterator[None]:
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


def q(values: Sequence[float] | np.ndarray[Any, Any], p: float) -> float:
    a = np.sort(np.asarray(values, dtype=float))
    return float(a[min(len(a) - 1, int(np.ceil(p * len(a))) - 1)]) if len(a) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick", choices=("quick", "full"))
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=20.0, help="timed load per block")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeat-ratio", type=float, default=0.5)
    parser.add_argument("--variants", default="default,thread,ort2,nospin,student,httpx")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        parser.error(f"--variants: {', '.join(bad) or 'none'} not valid; valid: {VARIANTS}")
    if not 0 <= args.repeat_ratio <= 1 or args.rounds < 1 or args.rate <= 0:
        parser.error("--repeat-ratio in [0, 1], --rounds >= 1 and --rate > 0")

    from reference_system.build import build
    from reference_system.data import load_splits
    from reference_system.serving.redis_server import RedisServer
    from reference_system.serving.services import SentimentService

    build(args.profile)
    texts = list(load_splits().test.texts)
    print(
        f"# benchmarks/colocated.py {' '.join(sys.argv[1:])}: {cpu_model()}, "
        f"{len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="colocated-bench-") as tmp, ExitStack() as stack:
        redis = stack.enter_context(RedisServer())
        urls: dict[str, str] = {}
        pids: dict[str, list[int]] = {}
        for v in variants:
            if v == "triton":
                from reference_system.serving.triton_repo import write_model_repository
                from reference_system.serving.triton_server import TritonServer

                repo = write_model_repository(
                    Path(tmp) / "repo", build(args.profile).onnx_int8_dynamic
                )
                triton = stack.enter_context(TritonServer(repo))
                extra = ["--triton-url", triton.grpc_url, "--redis-url", redis.url]
                front = stack.enter_context(
                    SentimentService("optimised", profile=args.profile, extra=extra)
                )
                urls[v], pids[v] = front.url, [p for p in (front.pid, triton.pid) if p]
            else:
                extra = ["--redis-url", redis.url, *SERVER_ARGS[v]]
                front = stack.enter_context(
                    SentimentService("colocated", profile=args.profile, extra=extra)
                )
                urls[v], pids[v] = front.url, [p for p in (front.pid,) if p]
        callers = {
            v: Caller(urls[v], workload(texts, args.repeat_ratio, 7), client=CLIENTS.get(v, "raw"))
            for v in variants
        }
        for c in callers.values():
            stack.callback(c.close)
        pooled: dict[str, list[int]] = {v: [] for v in variants}
        errors = dict.fromkeys(variants, 0)
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            for v in order:
                # Only the measured variant's servers run: the others are paused (SIGSTOP), so
                # an idle server's own work (e.g. --keep-warm-ms) is not charged to another.
                with paused([p for w, ps in pids.items() if w != v for p in ps]):
                    samples = run(callers[v], args.seconds, args.rate)
                pooled[v].extend(samples.latencies_ns.tolist())
                errors[v] += samples.errors
            print(f"# round {r + 1}/{args.rounds} done", file=sys.stderr)
        print(
            f"\n{args.rate:g} rps open loop, {args.repeat_ratio:.0%} repeats, "
            f"{args.rounds} rounds x {args.seconds:g} s per variant, order reversed each round\n"
        )
        print(
            "| variant | n | p50 ms | p99 ms | hits p50 / p99 | misses p50 / p99 "
            "| inference p50 / p99 | errors |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for v in variants:
            lat = np.asarray(pooled[v]) / 1e6
            c = callers[v]
            inf = c.stages.get("inference", [])
            print(
                f"| {v} | {len(lat)} | {q(lat, 0.5):.2f} | {q(lat, 0.99):.2f} "
                f"| {q(c.split[True], 0.5):.2f} / {q(c.split[True], 0.99):.2f} "
                f"| {q(c.split[False], 0.5):.2f} / {q(c.split[False], 0.99):.2f} "
                f"| {q(inf, 0.5):.2f} / {q(inf, 0.99):.2f} | {errors[v]} |"
            )


if __name__ == "__main__":
    main()
