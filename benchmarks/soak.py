"""Soak: both deployments under a steady open loop, with Redis and Triton each killed once.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--rate 10] [--profile quick|full]

Starts one Redis, one Triton (the 6-layer INT8 model) with the Triton front in front of it,
and the co-located front (the student, keep-warm 5 ms); drives each front at `--rate`
requests/s (evenly spaced, half of them repeating a popular review) for `--minutes`. A third of
the way in, Redis is SIGKILLed and started again on its port 2 s later; two thirds of the way
in, Triton is. Reports per front: requests sent and answered, errors by status (-1: no HTTP
answer), p50 / p99 per minute (from each request's intended start, answered requests only),
and each server's resident memory at the start and the end (growth is a leak). Not part of
the test suite; docs/benchmarks.md has a run. Do not run it beside another benchmark or the
SLO suite: 2 cores are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from pytest_latency.core.env import cpu_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from colocated import workload  # the benchmarks' shared workload (a sibling script)


def rss_mb(pid: int | None) -> float:
    """Resident memory of `pid` and its descendants (Triton's stubs), in MB."""
    if pid is None:
        return float("nan")
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for children in Path(f"/proc/{p}/task").glob("*/children"):
                todo.extend(int(c) for c in children.read_text().split())
        except OSError:
            continue
    return total / 1024


def drive(url: str, texts: list[str], rate: float, seconds: float, t0: float) -> list[tuple]:
    """Evenly spaced requests; each (intended s since t0, status, latency ms from intended)."""
    from reference_system.serving.loadgen_http import KeepAliveClient

    client = KeepAliveClient(url, timeout_s=5.0)
    out: list[tuple[float, int, float]] = []
    lock = threading.Lock()
    source = workload(texts, 0.5, seed=11)

    def one(intended: float, text: str) -> None:
        try:
            status = client.post("/predict", json.dumps({"texts": [text]}).encode()).status
        except OSError:
            status = -1
        with lock:
            out.append((intended - t0, status, (time.monotonic() - intended) * 1e3))

    with ThreadPoolExecutor(max_workers=32) as pool:
        for k in range(int(seconds * rate)):
            intended = t0 + k / rate
            time.sleep(max(0.0, intended - time.monotonic()))
            pool.submit(one, intended, next(source))
    client.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=10.0, help="requests/s per front")
    parser.add_argument("--profile", default="quick", choices=("quick", "full"))
    args = parser.parse_args()
    if args.minutes <= 0 or args.rate <= 0:
        parser.error(f"--minutes and --rate must be > 0, got {args.minutes}, {args.rate}")

    from reference_system.build import build
    from reference_system.data import load_splits
    from reference_system.serving.redis_server import RedisServer
    from reference_system.serving.services import SentimentService
    from reference_system.serving.triton_repo import write_model_repository
    from reference_system.serving.triton_server import TritonServer

    artifacts = build(args.profile)
    texts = list(load_splits().test.texts)
    seconds = args.minutes * 60
    print(
        f"# benchmarks/soak.py {' '.join(sys.argv[1:])}: {cpu_model()}, "
        f"{len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, ExitStack() as stack:
        redis = stack.enter_context(RedisServer())
        repo = write_model_repository(Path(tmp) / "repo", artifacts.onnx_int8_dynamic)
        triton = stack.enter_context(TritonServer(repo))
        common = ["--redis-url", redis.url]
        fronts = {
            "triton": stack.enter_context(
                SentimentService(
                    "optimised",
                    profile=args.profile,
                    extra=[*common, "--triton-url", triton.grpc_url],
                )
            ),
            "colocated": stack.enter_context(
                SentimentService(
                    "colocated",
                    profile=args.profile,
                    extra=[*common, "--model", "student", "--keep-warm-ms", "5"],
                )
            ),
        }
        servers = {"redis": redis.pid, "triton": triton.pid}
        servers.update({f"{n} front": f.pid for n, f in fronts.items()})
        rss_start = {n: rss_mb(p) for n, p in servers.items()}
        t0 = time.monotonic() + 0.5
        results: dict[str, list[tuple]] = {}
        threads = [
            threading.Thread(
                target=lambda n=n, f=f: results.__setitem__(
                    n, drive(f.url, texts, args.rate, seconds, t0)
                )
            )
            for n, f in fronts.items()
        ]
        for t in threads:
            t.start()
        events = []
        time.sleep(max(0.0, t0 + seconds / 3 - time.monotonic()))
        events.append(f"Redis SIGKILLed at {time.monotonic() - t0:.1f} s")
        redis.process.proc.kill()  # type: ignore[union-attr]
        redis.process.proc.wait()  # type: ignore[union-attr]
        time.sleep(2.0)
        redis.stop()
        redis.start()
        events.append(f"Redis back at {time.monotonic() - t0:.1f} s")
        time.sleep(max(0.0, t0 + 2 * seconds / 3 - time.monotonic()))
        events.append(f"Triton SIGKILLed at {time.monotonic() - t0:.1f} s")
        triton.kill()
        time.sleep(2.0)
        triton.restart()
        events.append(f"Triton back at {time.monotonic() - t0:.1f} s")
        for t in threads:
            t.join()
        servers["redis"], servers["triton"] = redis.pid, triton.pid  # restarted: new pids
        rss_end = {n: rss_mb(p) for n, p in servers.items()}

    print(f"\n{args.rate:g} rps per front for {args.minutes:g} min; " + "; ".join(events) + "\n")
    for name, rows in results.items():
        status = np.array([r[1] for r in rows])
        errors = {
            int(s): int((status == s).sum()) for s in sorted(set(status.tolist())) if s != 200
        }
        print(
            f"**{name} front**: {len(rows)} sent, {(status == 200).sum()} answered, "
            f"errors {errors}\n"
        )
        print("| minute | n | p50 ms | p99 ms | errors |\n|---|---|---|---|---|")
        for m in range(int(np.ceil(args.minutes))):
            inside = [r for r in rows if m * 60 <= r[0] < (m + 1) * 60]
            ok = [r[2] for r in inside if r[1] == 200]
            p50, p99 = np.percentile(ok, [50, 99]) if ok else (float("nan"),) * 2
            print(f"| {m + 1} | {len(inside)} | {p50:.1f} | {p99:.1f} | {len(inside) - len(ok)} |")
        print()
    print("| server | RSS start MB | RSS end MB |\n|---|---|---|")
    for n in servers:
        print(f"| {n} | {rss_start[n]:.0f} | {rss_end[n]:.0f} |")


if __name__ == "__main__":
    main()
