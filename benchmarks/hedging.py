"""Hedged against unhedged requests over two co-located replicas, in the same run.

    .venv/bin/python benchmarks/hedging.py [--profile quick] [--rates 100,300]
        [--samples 1500] [--block 25] [--stall-share 0.03] [--stall-ms 150] [--tails on,off]

Two real co-located fronts (the INT8 student, no cache: every request runs the model) on
loopback, with the injectable tail (reference_system/serving/stalls.py) switched on or off
between cases through ``POST /admin/stalls``. Per case (offered rate x tail), the hedged and
the unhedged client (reference_system/serving/hedging.py: the same round robin, only the hedge
differs) alternate open-loop blocks at that rate (`pytest_latency.core.compare`, Poisson
arrivals, latency from the intended start) until each side has `--samples`. Printed per case:
each side's p50 / p99, the p99 speed-up with its 95 % bounds, the hedges (and failovers) per
request, and the requests the replicas stalled. Do not run it beside other measurements.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytest_latency.core.compare import compare  # noqa: E402
from pytest_latency.core.env import cpu_model  # noqa: E402
from pytest_latency.core.spec import Spec  # noqa: E402
from pytest_latency.core.stats import quantile  # noqa: E402


def _stalls(urls: list[str], share: float, ms: float) -> None:
    from reference_system.serving.stalls import set_stalls

    for seed, url in enumerate(urls):
        set_stalls(url, share=share, ms=ms, seed=seed)


def _stalled(urls: list[str]) -> int:
    from reference_system.serving.stalls import stalled

    return sum(stalled(u) for u in urls)


def run_case(
    urls: list[str], texts: list[str], rate: float, tail: bool, args: argparse.Namespace
) -> dict[str, Any]:
    from reference_system.serving.hedging import HedgedClient, HttpReplicas

    _stalls(urls, args.stall_share if tail else 0.0, args.stall_ms if tail else 0.0)
    bodies = [json.dumps({"texts": [t]}).encode() for t in texts]
    sides = []
    for hedge in (False, True):
        http = HttpReplicas(urls)
        client = HedgedClient(http.send, len(urls), hedge=hedge)
        sides.append((http, client))

    def caller(client: HedgedClient[Any]) -> Any:
        count = iter(range(10**9))

        async def call() -> Any:
            return await client.request(bodies[next(count) % len(bodies)])

        return call

    stalled0 = _stalled(urls)
    spec = Spec(
        p99_ms=1e6,
        rate_rps=rate,
        min_samples=args.samples,
        max_samples=args.samples,
        max_time_s=4 * args.samples / rate + 60,
        warmup=50,
    )
    try:
        c = compare(
            caller(sides[0][1]),
            caller(sides[1][1]),
            spec=spec,
            quantile=0.99,
            min_speedup=2.0,
            block=args.block,
            names=("unhedged", "hedged"),
        )
    finally:
        for http, _ in sides:
            http.close()
    counts = sides[1][1].counts()
    if args.verbose:
        for s in (c.reference, c.candidate):
            qs = [quantile(s.sorted_ns(), q) / 1e6 for q in (0.5, 0.9, 0.95, 0.97, 0.99, 0.999)]
            print("  p50/90/95/97/99/99.9 ms:", " ".join(f"{q:.1f}" for q in qs), flush=True)
        print("  counts", counts, flush=True)
        for s in (c.reference, c.candidate):
            if s.first_error:
                print("  first error:", s.first_error.strip().splitlines()[-1], flush=True)
    return {
        "rate": rate,
        "tail": tail,
        "n": (c.reference.n, c.candidate.n),
        "errors": (c.reference.errors, c.candidate.errors),
        "p50": tuple(quantile(s.sorted_ns(), 0.5) / 1e6 for s in (c.reference, c.candidate)),
        "p99": (c.quantile_ms("reference"), c.quantile_ms("candidate")),
        "ratio": c.ratio,
        "bounds": (c.lower, c.upper),
        "hedges": counts["hedges"] / max(1, counts["requests"]),
        "failovers": counts["failovers"],
        "stalled": _stalled(urls) - stalled0,
        "requests": counts["requests"] + sides[0][1].counts()["requests"],
        "problems": c.problems,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=("quick", "full"))
    parser.add_argument("--rates", default="100,300")
    parser.add_argument("--samples", type=int, default=1500)
    parser.add_argument("--block", type=int, default=25)
    parser.add_argument("--stall-share", type=float, default=0.03)
    parser.add_argument("--stall-ms", type=float, default=150.0)
    parser.add_argument("--tails", default="on,off")
    parser.add_argument("-v", "--verbose", action="store_true", help="more quantiles, counts")
    args = parser.parse_args()

    from reference_system.data import load_splits
    from reference_system.serving.services import SentimentService

    texts = list(load_splits().test.texts[:1000])
    extra = ["--model", "student", "--stall-admin"]
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')} UTC, {cpu_model()}, Python "
        f"{platform.python_version()}, profile {args.profile}; stall {args.stall_share:g} of "
        f"requests x {args.stall_ms:g} ms when on; {args.samples} samples a side"
    )
    print(
        "| offered rps | injected tail | unhedged p50 / p99 ms | hedged p50 / p99 ms | "
        "p99 speed-up [95 % bounds] | hedges per request | stalled requests |"
    )
    print("|---|---|---|---|---|---|---|")
    with (
        SentimentService("colocated", profile=args.profile, extra=extra) as a,
        SentimentService(
            "colocated", profile=args.profile, extra=[*extra, "--stall-seed", "1"]
        ) as b,
    ):
        urls = [a.url, b.url]
        for rate in (float(r) for r in args.rates.split(",")):
            for tail in (t == "on" for t in args.tails.split(",")):
                r = run_case(urls, texts, rate, tail, args)
                lo, hi = (f"{x:.2f}x" if x is not None else "-" for x in r["bounds"])
                ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
                extra_note = f" ({r['failovers']} failovers)" if r["failovers"] else ""
                problems = f" PROBLEMS: {'; '.join(r['problems'])}" if r["problems"] else ""
                print(
                    f"| {rate:g} | {'on' if tail else 'off'} | {r['p50'][0]:.2f} / "
                    f"{r['p99'][0]:.2f} | {r['p50'][1]:.2f} / {r['p99'][1]:.2f} | {ratio} "
                    f"[{lo}, {hi}] | {r['hedges'] * 100:.1f} %{extra_note} | "
                    f"{r['stalled']} of {r['requests']} |{problems}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
