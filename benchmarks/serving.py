"""The serving stack under load, from one run: the three fronts, and batching on vs off.

    .venv/bin/python benchmarks/serving.py [--profile quick|full] [--rates 5,10,20,40,80]
        [--seconds 15] [--repeat-ratio 0.5] [--concurrency 1,2,4,8,16] [--p99-target-ms 50]

Part 1 -- the HTTP fronts (baseline: FastAPI + PyTorch FP32; optimised: FastAPI + Redis +
Triton INT8 over gRPC; colocated: FastAPI + Redis + the distilled INT8 student in the front's
process) at each offered rate, open loop (Poisson arrivals, latency from the intended start),
`--seconds` of timed load per point after a short warm-up. The stacks alternate at every rate
(ABC, CBA, ...). Per point: p50, p99, achieved throughput, error rate
(HTTP errors and 5 s timeouts), cache hit rate (the front's /metrics) and Triton's mean batch
size over the point (its statistics: inferences / executions).

Part 2 -- dynamic batching shown, not assumed: two Triton servers with the same model, one
with ragged dynamic batching and one without, driven directly over gRPC in a closed loop at
each `--concurrency`; per point p50, p99, throughput and mean batch size, and the best
throughput whose p99 stays within `--p99-target-ms`.

Every server is real and started here on loopback; all are stopped at the end. Timing uses
pytest-latency's own drivers. Do not run this beside another benchmark: 2 cores are shared.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from pytest_latency.core.env import cpu_model
from pytest_latency.core.runner import measure
from pytest_latency.core.samples import Samples
from pytest_latency.core.spec import Spec

HTTP_TIMEOUT_S = 5.0


def workload(texts: Sequence[str], repeat_ratio: float, seed: int) -> Iterator[str]:
    """The SLO tests' workload: a review from the 50 most popular with probability
    `repeat_ratio`, else a fresh one (tagged so it also misses a cache warmed by a past run)."""
    rng = random.Random(seed)
    hot = list(texts[:50])
    tag = f"{time.time_ns():x}"
    fresh = (f"{t} ({tag}-{i})" for i, t in enumerate(itertools.cycle(texts[50:])))
    while True:
        yield rng.choice(hot) if rng.random() < repeat_ratio else next(fresh)


class HttpCaller:
    """Posts one review a call through the load generator's raw-socket keep-alive client
    (``reference_system.serving.loadgen_http``: one connection per load thread, TCP_NODELAY).
    Not httpx: the open loop runs each measurement on fresh threads, and a new
    ``httpx.Client`` costs 17-34 ms of SSL set-up that lands in the samples (docs/serving.md)."""

    def __init__(self, url: str, texts: Iterator[str]) -> None:
        from reference_system.serving.loadgen_http import KeepAliveClient

        self.http = KeepAliveClient(url, timeout_s=HTTP_TIMEOUT_S)
        self.texts = texts
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            text = next(self.texts)
        response = self.http.post("/predict", json.dumps({"texts": [text]}).encode())
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {response.body[:200]!r}")

    def close(self) -> None:
        self.http.close()


def run(call: Callable[[], Any], seconds: float, **load: Any) -> Samples:
    """`seconds` of timed load (after a 2 s warm-up), never stopped early by a verdict."""
    rate = load.get("rate_rps")
    warmup = max(10, int(rate)) if rate else 20
    spec = Spec.from_kwargs(
        p99_ms=1e9,  # a target nothing fails: we want the whole run, not a decision
        warmup=warmup,
        min_samples=10**7,
        max_samples=10**7,
        max_time_s=seconds,
        max_error_rate=0.99,
        **load,
    ).resolved({})
    return measure(call, spec=spec).samples


def pct(samples: Samples, q: float) -> float:
    lat = samples.sorted_ns()
    if not len(lat):
        return float("nan")
    return float(lat[min(len(lat) - 1, int(np.ceil(q * len(lat))) - 1)]) / 1e6


def http_metrics(url: str) -> dict[str, Any]:
    import httpx

    return dict(httpx.get(f"{url}/metrics", timeout=HTTP_TIMEOUT_S).json())


class BatchCounter:
    """Triton's mean batch size over an interval: delta inferences / delta executions."""

    def __init__(self, grpc_url: str) -> None:
        from reference_system.serving.triton_client import TritonGrpcClient

        self.client = TritonGrpcClient(grpc_url, timeout_s=5.0)
        self._last = self._read()

    def _read(self) -> tuple[float, float]:
        s = self.client.statistics()
        return s["inference_count"], s["execution_count"]

    def interval(self) -> float:
        now = self._read()
        inferences, executions = now[0] - self._last[0], now[1] - self._last[1]
        self._last = now
        return inferences / executions if executions else float("nan")


def part1(
    args: argparse.Namespace, urls: dict[str, str], batches: BatchCounter, texts: Any
) -> None:
    print("\n## The fronts, open loop (Poisson), one review per request\n")
    print(
        "| stack | offered rps | p50 ms | p99 ms | throughput rps | errors | cache hit rate "
        "| Triton mean batch |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for i, rate in enumerate(args.rates):
        order = list(urls) if i % 2 == 0 else list(urls)[::-1]
        rows = {}
        for stack in order:
            url = urls[stack]
            repeat = args.repeat_ratio if stack != "baseline" else 0.0
            caller = HttpCaller(url, workload(texts, repeat, seed=i))
            before = http_metrics(url)
            batches.interval()
            try:
                samples = run(caller, args.seconds, rate_rps=rate)
            finally:
                caller.close()
            after = http_metrics(url)
            hits = after.get("cache_hits", 0) - before.get("cache_hits", 0)
            looked = hits + after.get("cache_misses", 0) - before.get("cache_misses", 0)
            batch = batches.interval() if stack == "optimised" else float("nan")
            rows[stack] = (
                f"| {stack} | {rate:g} | {pct(samples, 0.5):.1f} | {pct(samples, 0.99):.1f} "
                f"| {samples.throughput_rps or 0:.1f} | {samples.error_rate:.1%} "
                f"| {(f'{hits / looked:.0%}' if looked else '-')} "
                f"| {'-' if np.isnan(batch) else f'{batch:.2f}'} |"
            )
        for stack in urls:
            print(rows[stack], flush=True)


def part2(args: argparse.Namespace, grpc_urls: dict[str, str], feeds_list: list[Any]) -> None:
    from reference_system.serving.triton_client import TritonGrpcClient

    print(f"\n## Triton over gRPC, closed loop: dynamic batching on vs off ({args.seconds:g} s)\n")
    print("| batching | concurrency | p50 ms | p99 ms | throughput rps | mean batch |")
    print("|---|---|---|---|---|---|")
    best: dict[str, tuple[float, int]] = {}
    for i, concurrency in enumerate(args.concurrency):
        order = ["on", "off"] if i % 2 == 0 else ["off", "on"]
        rows = {}
        for mode in order:
            with TritonGrpcClient(grpc_urls[mode], timeout_s=HTTP_TIMEOUT_S) as client:
                counter = BatchCounter(grpc_urls[mode])
                stream = itertools.cycle(feeds_list)
                lock = threading.Lock()

                def call(client: Any = client, stream: Any = stream, lock: Any = lock) -> None:
                    with lock:
                        feeds = next(stream)
                    client.infer(feeds)

                samples = run(call, args.seconds, concurrency=concurrency)
                batch = counter.interval()
                counter.client.close()
            p99, rps = pct(samples, 0.99), samples.throughput_rps or 0.0
            if p99 <= args.p99_target_ms and rps > best.get(mode, (0.0, 0))[0]:
                best[mode] = (rps, concurrency)
            rows[mode] = (
                f"| {mode} | {concurrency} | {pct(samples, 0.5):.1f} | {p99:.1f} | {rps:.1f} "
                f"| {batch:.2f} |"
            )
        print(rows["on"])
        print(rows["off"], flush=True)
    print(f"\nBest throughput with p99 <= {args.p99_target_ms:g} ms:")
    for mode in ("on", "off"):
        rps, c = best.get(mode, (0.0, 0))
        print(f"- batching {mode}: " + (f"{rps:.1f} rps (concurrency {c})" if c else "none"))


def csv_floats(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected numbers like 5,10,20") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive numbers like 5,10,20")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick", choices=("quick", "full"))
    parser.add_argument("--rates", type=csv_floats, default=[5.0, 10.0, 20.0, 40.0, 80.0])
    parser.add_argument("--seconds", type=float, default=15.0, help="timed load per point")
    parser.add_argument("--repeat-ratio", type=float, default=0.5)
    parser.add_argument("--concurrency", type=csv_floats, default=[1.0, 2.0, 4.0, 8.0, 16.0])
    parser.add_argument("--p99-target-ms", type=float, default=50.0)
    parser.add_argument("--skip-part1", action="store_true")
    parser.add_argument("--skip-part2", action="store_true")
    args = parser.parse_args()
    if not 0 <= args.repeat_ratio <= 1:
        parser.error(f"--repeat-ratio must lie in [0, 1], got {args.repeat_ratio}")
    args.concurrency = [int(c) for c in args.concurrency]

    from reference_system.build import build
    from reference_system.data import load_splits
    from reference_system.predictors import Encoder
    from reference_system.serving.redis_server import RedisServer
    from reference_system.serving.services import SentimentService
    from reference_system.serving.triton_repo import write_model_repository
    from reference_system.serving.triton_server import TritonServer

    artifacts = build(args.profile)
    texts = list(load_splits().test.texts)
    print(
        f"# benchmarks/serving.py --profile {args.profile}: {cpu_model()}, "
        f"{len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as tmp, ExitStack() as stack:
        tritons = {}
        for mode in ("on", "off"):
            repo = write_model_repository(
                Path(tmp) / f"repo-{mode}",
                artifacts.onnx_int8_dynamic,
                dynamic_batching=mode == "on",
            )
            tritons[mode] = stack.enter_context(TritonServer(repo))
        if not args.skip_part1:
            redis = stack.enter_context(RedisServer())
            extra = ["--triton-url", tritons["on"].grpc_url, "--redis-url", redis.url]
            urls = {
                "baseline": stack.enter_context(
                    SentimentService("baseline", profile=args.profile)
                ).url,
                "optimised": stack.enter_context(
                    SentimentService("optimised", profile=args.profile, extra=extra)
                ).url,
                "colocated": stack.enter_context(
                    SentimentService(
                        "colocated",
                        profile=args.profile,
                        extra=["--redis-url", redis.url, "--model", "student"],
                    )
                ).url,
            }
            batches = BatchCounter(tritons["on"].grpc_url)
            stack.callback(batches.client.close)
            part1(args, urls, batches, texts)
        if not args.skip_part2:
            encode = Encoder(artifacts.tokenizer_dir)
            feeds_list = [encode([t]) for t in texts[:200]]
            part2(args, {m: t.grpc_url for m, t in tritons.items()}, feeds_list)


if __name__ == "__main__":
    main()
