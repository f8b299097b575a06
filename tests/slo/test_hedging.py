"""Hedged requests, as SLO tests: "send the request to a second replica if the first has not
answered by the p95; take whichever answers first".

Two replicas of the co-located front (the INT8 student in each uvicorn process, no cache:
every request runs the model), each with an injectable tail switched at run time through its
``POST /admin/stalls`` (reference_system/serving/stalls.py). The hedged and the unhedged client
(reference_system/serving/hedging.py: the same round robin over the same replicas; only the
hedge differs) take turns in blocks of open-loop requests at the same offered rate, in the
same run (`latency.speedup`), so a drift of the shared host hits both. Figures:
docs/serving.md, "Hedged requests".
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from pytest_latency.core.stats import quantile

pytest.importorskip("fastapi", reason="run: pip install -r requirements/reference.txt")

pytestmark = pytest.mark.slo

# The markers' p99_ms=1000 decides nothing here (a comparison decides only its ratio); it
# sizes the grace after which a hung call fails the test (2 s).
HEDGE_RPS = 100  # offered to the pair: 50 rps a replica, far from either's saturation
# The injected tail: 3 % of requests wait 150 ms on the replica that drew them. Under the 5 %
# that a p95 delay hedges, so the delay stays in the normal answers' range; over the 1 % that
# p99 looks at, so the unhedged p99 is a stall. 150 ms, not 80: in the shared host's busy
# hours the hedge's delay and the hedged p99 grow, and a shorter stall then leaves the 2x
# undecided (the figures: docs/serving.md, "Hedged requests").
STALL_SHARE, STALL_MS = 0.03, 150.0
# 25 requests (0.25 s) per block: the host's bursts of contention last up to about a second,
# and blocks that short spread one over both sides instead of putting it into one side's p99.
BLOCK = 25
# At least 1,500 a side: the unhedged p99's lower bound (near its 98.3rd percentile) must be
# a stall even when the draw stalls fewer requests than its 3 % (45 expected; 25 would do).
MIN_SAMPLES = 1500


@pytest.fixture
def replicas(colocated_replicas: list[str]) -> list[str]:
    return colocated_replicas


def set_stalls(urls: Sequence[str], share: float, ms: float) -> None:
    from reference_system.serving.stalls import set_stalls as set_one

    for seed, url in enumerate(urls):
        set_one(url, share=share, ms=ms, seed=seed)


def stall_counts(urls: Sequence[str]) -> int:
    from reference_system.serving.stalls import stalled

    return sum(stalled(u) for u in urls)


class Side:
    """One side of the comparison: ``await side()`` posts the next review through a
    `HedgedClient` over the replicas (hedged or not)."""

    def __init__(self, urls: Sequence[str], texts: Sequence[str], *, hedge: bool) -> None:
        from reference_system.serving.hedging import HedgedClient, HttpReplicas

        self.http = HttpReplicas(urls)
        self.client = HedgedClient(self.http.send, len(urls), hedge=hedge)
        self._bodies = itertools.cycle([json.dumps({"texts": [t]}).encode() for t in texts])

    async def __call__(self) -> dict[str, Any]:
        return await self.client.request(next(self._bodies))

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def sides(replicas: list[str], review_texts: list[str]) -> Iterator[tuple[Side, Side]]:
    hedged = Side(replicas, review_texts, hedge=True)
    unhedged = Side(replicas, review_texts, hedge=False)
    yield hedged, unhedged
    hedged.close()
    unhedged.close()
    set_stalls(replicas, 0.0, 0.0)  # whatever the test did, the next one starts without a tail


# With one replica at a time stalling 3 % of requests for 80 ms, a hedge at the p95 answers
# those requests from the other replica in its normal time: the hedged p99 is at least 2x
# lower with 95 % confidence (the speed-up's lower bound), for at most 10 % extra requests.
@pytest.mark.slo(p99_ms=1000, rate_rps=HEDGE_RPS, min_samples=MIN_SAMPLES, max_time_s=90)
def test_hedging_at_the_p95_cuts_an_injected_stall_tail_at_least_2x_at_p99(
    latency, replicas, sides
):
    hedged, unhedged = sides
    set_stalls(replicas, STALL_SHARE, STALL_MS)
    stalled_before = stall_counts(replicas)
    comparison = latency.speedup(
        hedged, unhedged, min_speedup=2.0, block=BLOCK, names=("hedged", "unhedged")
    )
    counts = hedged.client.counts()
    stalled = stall_counts(replicas) - stalled_before
    print(comparison.summary(), counts, f"stalled {stalled}", sep="\n")
    assert comparison.lower is not None, comparison.summary()
    assert comparison.lower >= 2.0, comparison.summary()
    assert stalled >= 0.02 * (comparison.reference.n + comparison.candidate.n)  # a tail ran
    assert hedged.client.extra_load() <= 0.10, counts
    assert counts["hedges"] >= 1, counts
    assert counts["cancelled"] >= 1, counts
    assert unhedged.client.counts()["hedges"] == 0


# Without an injected tail, hedging sends few hedges and leaves the typical request alone:
# at most 10 % of requests are sent twice, and the hedged median is at most 1.25x the
# unhedged one with 95 % confidence (`quantile=0.5, min_speedup=0.8`). The p99 is reported,
# not decided: with no stall to cut, the tail here is the shared host's contention, which
# both replicas feel at once, and a hedge then only adds work when the cores are scarcest --
# in busy hours the hedged p99 measured 0.57-0.88x the unhedged one (docs/serving.md,
# "Hedged requests"); deciding "within noise" there would be deciding the host.
@pytest.mark.slo(p99_ms=1000, rate_rps=HEDGE_RPS, min_samples=1000, max_time_s=60)
def test_without_a_tail_hedging_sends_few_hedges_and_leaves_the_median_alone(
    latency, replicas, sides
):
    hedged, unhedged = sides
    set_stalls(replicas, 0.0, 0.0)
    stalled_before = stall_counts(replicas)
    comparison = latency.speedup(
        hedged,
        unhedged,
        min_speedup=0.8,
        quantile=0.5,
        block=BLOCK,
        names=("hedged", "unhedged"),
    )
    counts = hedged.client.counts()
    p99 = [
        quantile(s.sorted_ns(), 0.99) / 1e6 for s in (comparison.reference, comparison.candidate)
    ]
    print(comparison.summary(), counts, f"p99 unhedged {p99[0]:.1f} ms, hedged {p99[1]:.1f} ms")
    assert comparison.lower is not None, comparison.summary()
    assert comparison.lower >= 0.8, comparison.summary()
    assert hedged.client.extra_load() <= 0.10, counts
    assert counts["hedges"] >= 1, counts  # the hedge still fires at the p95: it is armed
    assert stall_counts(replicas) == stalled_before  # no tail was injected
