"""Open loop over long stalls: reported percentiles against what the offered schedule implies.

    .venv/bin/python benchmarks/stalls.py

A "server" answers at once except during a freeze, when every call waits for the freeze to
end. At RATE requests per second (constant gaps) the requests due during a freeze of F
seconds wait F, F - 1/RATE, ...; the expected percentiles below are computed from that
schedule alone, the reported ones are what `measure` decides on. Three cases: a 3 s freeze
across two block boundaries, a freeze that lasts past the end of the measurement, and a server
that never answers after its first call.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

from pytest_latency.core.runner import measure
from pytest_latency.core.spec import Spec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# The same frozen "server" the tests use (tests/unit/test_open_loop_stalls.py).
from tests.unit.test_open_loop_stalls import FreezingServer as Freezing

RATE = 100
WARMUP = 20
QUANTILES = (0.5, 0.75, 0.9, 0.99)


def nearest(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]


def row(case: str, expected: list[float], reported: list[float], m: object) -> None:
    s = m.samples  # type: ignore[attr-defined]
    cells = []
    for q in QUANTILES:
        cells.append(f"{nearest(expected, q) * 1000:8.0f} / {nearest(reported, q) * 1000:8.0f}")
    print(
        f"| {case} | {s.n + s.censored} | {s.censored} | {' | '.join(cells)} | "
        f"{m.verdict.decision} |"  # type: ignore[attr-defined]
    )


def main() -> None:
    heads = " | ".join(f"p{q * 100:g} ms exp / rep" for q in QUANTILES)
    print(f"| case | requests | unfinished | {heads} | verdict |")
    print("|---|---|---|" + "---|" * len(QUANTILES) + "---|")
    # 1. A 3 s freeze 1.5 s into the timed requests, spanning two block boundaries.
    server = Freezing(1 + WARMUP + 150, 3.0)
    spec = Spec(
        p90_ms=100,
        rate_rps=RATE,
        arrivals="constant",
        warmup=WARMUP,
        min_samples=600,
        max_time_s=30,
    ).resolved({})
    m = measure(server, spec=spec)
    total = m.samples.n + m.samples.censored
    frozen = [3.0 - k / RATE for k in range(int(3.0 * RATE))]
    expected = frozen + [0.0] * (total - len(frozen))
    row("3 s freeze across block boundaries", expected, list(m.samples.sorted_ns() / 1e9), m)

    # 2. A freeze from 1 s into the timed requests to past the end of max_time_s (4 s).
    server = Freezing(1 + WARMUP + 100, None)
    spec = Spec(
        p90_ms=50, rate_rps=RATE, arrivals="constant", warmup=WARMUP, min_samples=2000, max_time_s=4
    ).resolved({})
    t0 = time.perf_counter_ns()
    m = measure(server, spec=spec)
    server.release()
    assert server.frozen_at_ns is not None
    stuck_s = (t0 + 4_000_000_000 - server.frozen_at_ns) / 1e9
    due = int(stuck_s * RATE)
    expected = [0.0] * m.samples.n + [stuck_s - k / RATE for k in range(due)]
    row("freeze past the end (4 s budget)", expected, list(m.samples.sorted_ns() / 1e9), m)

    # 3. Never answers after the cold call: every timed request is unfinished.
    server = Freezing(2, None)
    spec = Spec(
        p50_ms=20, rate_rps=RATE, arrivals="constant", warmup=WARMUP, min_samples=300, max_time_s=10
    ).resolved({})
    m = measure(server, spec=spec)
    server.release()
    bounds = sorted(m.samples.censored_ns / 1e9)
    # Requests due every 1/RATE up to the moment the look counted them.
    span = bounds[-1]
    expected = [span - k / RATE for k in range(len(bounds))]
    row("never answers", expected, list(m.samples.sorted_ns() / 1e9), m)


if __name__ == "__main__":
    main()
