"""The highest offered rate each load driver sustains against a trivial loopback HTTP server.

    .venv/bin/python benchmarks/load_engines.py                 # the full table (minutes)
    .venv/bin/python benchmarks/load_engines.py --duration 2 --drivers threads,locust-1

Drivers: the in-process open loop with a sync keep-alive client on its threads ("threads"),
with an asyncio keep-alive client ("asyncio"), and `engine="locust"` with 1, 2 and 4 worker
processes ("locust-N"). Each is offered doubling Poisson rates, then bisected between the last
rate it sustained and the first it did not. *Sustained*: start-lag p99 under 1 ms, achieved
rate within 1 % of offered, nothing left unissued or unfinished. The server (an asyncio
server writing one fixed reply per request) runs in a process of its own and shares the
machine's cores with the driver: CPU time per request is reported for both sides (driver:
this process plus, for Locust, its master and workers; from /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_latency.core.cluster import LocustCluster
from pytest_latency.core.distributed import make_locust_driver
from pytest_latency.core.remote import http_target
from pytest_latency.core.runner import Measurement, measure
from pytest_latency.core.spec import Spec

SERVER = textwrap.dedent(
    """
    import asyncio, sys
    REPLY = b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok"
    class P(asyncio.Protocol):
        def connection_made(self, t): self.t = t
        def data_received(self, data):
            for _ in range(data.count(b"\\r\\n\\r\\n")): self.t.write(REPLY)
    async def main():
        srv = await asyncio.get_running_loop().create_server(P, "127.0.0.1", 0)
        print(srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.Event().wait()
    asyncio.run(main())
    """
)
TICK = os.sysconf("SC_CLK_TCK")
LAG_P99_NS = 1_000_000
RATE_TOLERANCE = 0.01
# One loop for every asyncio measurement: its kept-alive connections belong to it.
LOOP = asyncio.new_event_loop()


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of `pids` so far (exited ones count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


_local = threading.local()


def sync_client(port: int) -> Callable[[], None]:
    def get() -> None:
        conn = getattr(_local, "conn", None)
        if conn is None:
            conn = _local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/")
        conn.getresponse().read()

    return get


def async_client(port: int) -> Callable[[], Any]:
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def get() -> None:
        if idle:
            reader, writer = idle.pop()
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        idle.append((reader, writer))

    return get


def one(
    driver: str, rate: float, duration: float, port: int, cluster: LocustCluster | None
) -> tuple[Measurement, float]:
    n = int(rate * duration * 0.9)
    spec = Spec(
        p99_ms=10_000,
        rate_rps=rate,
        warmup=0,
        min_samples=max(n, 1),
        max_samples=max(n, 1),
        max_time_s=duration + 2,
        seed=1,
        **({"engine": "locust", "workers": cluster.workers} if cluster else {}),
    ).resolved({})
    pids = [os.getpid(), *(cluster.pids if cluster else [])]
    before = cpu_s(pids)
    if cluster is not None:
        target = http_target("GET", f"http://127.0.0.1:{port}/")
        m = measure(lambda: None, spec=spec, driver_factory=make_locust_driver(target, cluster))
    elif driver == "asyncio":
        m = measure(async_client(port), spec=spec, loop=LOOP)
    else:
        m = measure(sync_client(port), spec=spec)
    return m, cpu_s(pids) - before


def sustained(m: Measurement) -> bool:
    load = m.samples.load
    lag = load.start_lag_p99_ns
    return (
        lag is not None
        and lag < LAG_P99_NS
        and load.achieved_rps is not None
        and abs(load.achieved_rps - (load.offered_rps or 0))
        <= RATE_TOLERANCE * (load.offered_rps or 0)
        and load.not_issued <= 0
        and load.censored == 0
        and m.samples.hung == 0
    )


def search(driver: str, args: argparse.Namespace, port: int, server_pid: int) -> dict[str, Any]:
    cluster = None
    if driver.startswith("locust-"):
        cluster = LocustCluster(int(driver.split("-")[1]))
        cluster.start()
    best: dict[str, Any] = {"driver": driver, "rate": None}
    try:
        lo, hi, rate = 0.0, None, float(args.start)
        steps = 0
        while steps < args.max_steps:
            steps += 1
            server_before = cpu_s([server_pid])
            m, driver_cpu = one(driver, rate, args.duration, port, cluster)
            server_cpu = cpu_s([server_pid]) - server_before
            ok = sustained(m)
            load = m.samples.load
            issued = max(1, load.issued)
            print(
                f"  {driver:10s} {rate:8.0f} rps: lag p99 "
                f"{(load.start_lag_p99_ns or 0) / 1e6:6.3f} ms, achieved "
                f"{load.achieved_rps or 0:8.1f}, not issued {load.not_issued}, censored "
                f"{load.censored} -> {'ok' if ok else 'no'}",
                file=sys.stderr,
            )
            if ok:
                lo = rate
                best = {
                    "driver": driver,
                    "rate": rate,
                    "lag_p99_ms": (load.start_lag_p99_ns or 0) / 1e6,
                    "achieved": load.achieved_rps,
                    "p50_ms": float(
                        sorted(m.samples.latencies_ns)[len(m.samples.latencies_ns) // 2]
                    )
                    / 1e6,
                    "driver_us": driver_cpu / issued * 1e6,
                    "server_us": server_cpu / issued * 1e6,
                }
            else:
                hi = rate
            if hi is None:
                rate *= 2
            elif hi - lo <= max(lo * 0.1, 50):
                break
            else:
                rate = (lo + hi) / 2 if lo else hi / 2
                if rate < 50:
                    break
    finally:
        if cluster is not None:
            cluster.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per offered rate")
    parser.add_argument("--start", type=float, default=500.0, help="first offered rate, rps")
    parser.add_argument("--max-steps", type=int, default=10, help="rates tried per driver")
    parser.add_argument(
        "--drivers", default="threads,asyncio,locust-1,locust-2,locust-4", help="comma-separated"
    )
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        rows = [search(d, args, port, server.pid) for d in args.drivers.split(",")]
    finally:
        server.kill()
        server.wait()
    print(
        f"\nOffered Poisson load, {args.duration:g} s per rate, {os.cpu_count()} cores shared "
        "with the server.\n"
    )
    print(
        "| driver | highest sustained rps | start-lag p99 ms | achieved rps | p50 ms | "
        "driver CPU µs/request | server CPU µs/request |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["rate"] is None:
            print(f"| {r['driver']} | below {args.start:g} | | | | | |")
            continue
        print(
            f"| {r['driver']} | {r['rate']:.0f} | {r['lag_p99_ms']:.3f} | {r['achieved']:.0f} | "
            f"{r['p50_ms']:.2f} | {r['driver_us']:.0f} | {r['server_us']:.0f} |"
        )


if __name__ == "__main__":
    main()
