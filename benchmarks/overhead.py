"""Harness overhead per timed call: pytest-latency's loops vs a bare perf_counter_ns loop and
pytest-benchmark's pedantic mode, on the same no-op callable, in one run.

    .venv/bin/python benchmarks/overhead.py [--calls 200000] [--repeats 5]

What is measured, per variant, as the median over `repeats` alternated blocks:
* wall ns per call: total wall time / calls, minus the same for an untimed ``fn()`` loop
  (so it is what timing adds on top of calling);
* min sample ns: the smallest latency the variant records for a no-op (its floor bias).
The open loop runs at a fixed rate, so its wall time is set by the schedule: CPU ns per call
(process time) is reported instead, plus the p50/p99 lag between intended and actual start.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from pytest_latency.core.drivers import Call, ClosedLoopDriver, SerialDriver
from pytest_latency.core.openloop import OpenLoopDriver

FAR = 2**62


def noop() -> None:
    return None


def untimed(n: int) -> float:
    fn = noop
    t0 = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - t0) / n


def bare(n: int) -> tuple[float, int]:
    fn, clock = noop, time.perf_counter_ns
    out: list[int] = []
    append = out.append
    t0 = clock()
    for _ in range(n):
        s = clock()
        fn()
        append(clock() - s)
    return (clock() - t0) / n, min(out)


def serial(n: int) -> tuple[float, int]:
    driver = SerialDriver(Call(noop, (), {}, None))
    t0 = time.perf_counter_ns()
    block = driver.run_block(n, FAR)
    return (time.perf_counter_ns() - t0) / n, min(block.latencies_ns)


def closed(n: int, workers: int) -> tuple[float, int]:
    driver = ClosedLoopDriver(Call(noop, (), {}, None), workers)
    try:
        driver.run_block(100, FAR)  # start the threads outside the timing
        t0 = time.perf_counter_ns()
        block = driver.run_block(n, FAR)
        return (time.perf_counter_ns() - t0) / n, min(block.latencies_ns)
    finally:
        driver.close()


def open_loop(n: int, rate: float) -> tuple[float, int, int, int]:
    driver = OpenLoopDriver(Call(noop, (), {}, None), rate, "constant", 1)
    try:
        c0 = time.process_time_ns()
        block = driver.run_block(n, FAR)
        cpu = (time.process_time_ns() - c0) / n
        lags = sorted(block.start_lags_ns)
        return cpu, min(block.latencies_ns), lags[len(lags) // 2], lags[int(len(lags) * 0.99)]
    finally:
        driver.close()


PEDANTIC_TEST = """
import time
from pathlib import Path

def noop():
    return None

def test_pedantic(benchmark):
    t0 = time.perf_counter_ns()
    benchmark.pedantic(noop, rounds={n}, iterations=1, warmup_rounds=0)
    wall = (time.perf_counter_ns() - t0) / {n}
    floor = min(benchmark.stats.stats.data) * 1e9
    Path({out!r}).write_text(f"{{wall}} {{floor}}")
"""


def pedantic(n: int) -> tuple[float, int] | None:
    """pytest-benchmark's pedantic mode inside a real pytest run (it needs its fixture)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, "result.txt")
        Path(tmp, "test_p.py").write_text(textwrap.dedent(PEDANTIC_TEST.format(n=n, out=str(out))))
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:latency",
                "--benchmark-disable-gc",
                "test_p.py",
            ],
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0 or not out.exists():
            print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
            return None
        wall, floor = out.read_text().split()
        return float(wall), int(float(floor))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rate", type=float, default=2000.0, help="open-loop rate (rps)")
    args = parser.parse_args()
    n = args.calls

    variants: dict[str, Callable[[], tuple[float, ...] | None]] = {
        "bare perf_counter_ns loop": lambda: bare(n),
        "pytest-latency serial": lambda: serial(n),
        "pytest-latency closed loop, 1 worker": lambda: closed(n, 1),
        "pytest-latency closed loop, 2 workers": lambda: closed(n, 2),
        "pytest-benchmark pedantic": lambda: pedantic(n),
    }
    rows: dict[str, list[tuple[float, ...]]] = {k: [] for k in variants}
    base: list[float] = []
    for _ in range(args.repeats):  # alternate the variants in blocks, one block each per round
        base.append(untimed(n))
        for name, run in variants.items():
            got = run()
            if got is not None:
                rows[name].append(got)
    call_ns = statistics.median(base)
    open_rows = [open_loop(min(n, int(args.rate * 3)), args.rate) for _ in range(args.repeats)]

    print(
        f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"calls per block {n:,}, repeats {args.repeats}, untimed fn() call {call_ns:.1f} ns"
    )
    print(f"{'variant':40} {'overhead ns/call':>17} {'min sample ns':>14}")
    for name, got in rows.items():
        if not got:
            print(f"{name:40} {'(failed)':>17}")
            continue
        wall = statistics.median(g[0] for g in got) - call_ns
        floor = statistics.median(g[1] for g in got)
        print(f"{name:40} {wall:17.1f} {floor:14.0f}")
    cpu = statistics.median(r[0] for r in open_rows)
    print(
        f"{f'pytest-latency open loop @ {args.rate:g} rps':40} {cpu:13.0f} CPU "
        f"{statistics.median(r[1] for r in open_rows):14.0f}   start lag p50 "
        f"{statistics.median(r[2] for r in open_rows) / 1e3:.0f} us, p99 "
        f"{statistics.median(r[3] for r in open_rows) / 1e3:.0f} us"
    )


if __name__ == "__main__":
    main()
