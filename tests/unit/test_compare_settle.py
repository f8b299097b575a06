"""`compare(..., settle_s=...)`: an unmeasured pause before each block, so work one side leaves
running after its last call cannot slow the other side's block (a bias for the side that
leaves it)."""

from __future__ import annotations

import itertools
import math
import time

import pytest

from pytest_latency.core.compare import compare
from pytest_latency.core.spec import Spec, SpecError
from pytest_latency.core.verdict import Decision

LEFT_BEHIND_S = 0.15  # how long the reference's "background work" lasts after each call


def _pair() -> tuple[object, object, list[tuple[str, int]]]:
    """A reference (2 ms) that leaves work behind, and a candidate (0.2 ms) slowed to 4 ms
    while that work runs -- a keep-warm loop of a server, say."""
    state = {"busy_until": 0.0}
    log: list[tuple[str, int]] = []

    def reference() -> None:
        log.append(("reference", time.perf_counter_ns()))
        time.sleep(0.002)
        state["busy_until"] = time.perf_counter() + LEFT_BEHIND_S

    def candidate() -> None:
        log.append(("candidate", time.perf_counter_ns()))
        time.sleep(0.004 if time.perf_counter() < state["busy_until"] else 0.0002)

    return reference, candidate, log


SPEC = Spec(p99_ms=1e3, warmup=0, max_time_s=30, min_samples=100)


def test_without_a_pause_the_left_behind_work_lands_on_the_other_side() -> None:
    reference, candidate, _ = _pair()
    c = compare(reference, candidate, quantile=0.5, min_speedup=2, block=20, spec=SPEC)  # type: ignore[arg-type]
    assert c.decision is Decision.FAIL, c.summary()  # the candidate looked slower than it is


def test_a_pause_before_each_block_lets_it_stop_first() -> None:
    reference, candidate, log = _pair()
    c = compare(
        reference,  # type: ignore[arg-type]
        candidate,  # type: ignore[arg-type]
        quantile=0.5,
        min_speedup=2,
        block=20,
        spec=SPEC,
        settle_s=0.2,
    )
    assert c.decision is Decision.PASS, c.summary()
    assert c.settle_s == 0.2
    assert "0.2 s unmeasured pause" in c.summary()
    assert c.to_dict()["settle_s"] == 0.2
    # Every switch of side (after the cold calls) waited at least the pause.
    timed = log[2:]
    switches = [(b[1] - a[1]) / 1e9 for a, b in itertools.pairwise(timed) if a[0] != b[0]]
    assert switches, log
    assert min(switches) >= 0.2, switches


def test_the_pause_counts_against_max_time() -> None:
    reference, candidate, _ = _pair()
    spec = Spec(p99_ms=1e3, warmup=0, max_time_s=1.0, min_samples=10_000)
    t0 = time.perf_counter()
    compare(reference, candidate, quantile=0.5, block=5, spec=spec, settle_s=0.4)  # type: ignore[arg-type]
    assert time.perf_counter() - t0 < 3.0


@pytest.mark.parametrize("bad", [-0.1, 61, math.nan, True, "1"])
def test_a_bad_pause_is_refused_by_name(bad: object) -> None:
    reference, candidate, _ = _pair()
    with pytest.raises(SpecError, match=r"settle_s=.* is not valid; expected a pause in seconds"):
        compare(reference, candidate, spec=SPEC, settle_s=bad)  # type: ignore[arg-type]


def _cold_after_switch() -> tuple[object, object]:
    """A reference (2 ms) and a candidate (0.2 ms) whose first 3 calls after the reference
    ran are slow (20 ms): cold in a way steady traffic never is. Blocks go AB BA AB ..., so
    half the candidate's blocks follow the reference's: 3 of every 40 calls, over 5 %."""
    state = {"since_switch": 0}

    def reference() -> None:
        state["since_switch"] = 0
        time.sleep(0.002)

    def candidate() -> None:
        state["since_switch"] += 1
        time.sleep(0.02 if state["since_switch"] <= 3 else 0.0002)

    return reference, candidate


def test_cold_block_openings_weigh_on_a_tail_quantile() -> None:
    reference, candidate = _cold_after_switch()
    c = compare(reference, candidate, quantile=0.95, min_speedup=2, block=20, spec=SPEC)  # type: ignore[arg-type]
    assert c.decision is Decision.FAIL, c.summary()


def test_untimed_block_openings_leave_them_out() -> None:
    reference, candidate = _cold_after_switch()
    c = compare(
        reference,  # type: ignore[arg-type]
        candidate,  # type: ignore[arg-type]
        quantile=0.95,
        min_speedup=2,
        block=20,
        spec=SPEC,
        block_warmup=3,
    )
    assert c.decision is Decision.PASS, c.summary()
    assert "each block's first 3 calls unmeasured" in c.summary()
    assert c.to_dict()["block_warmup"] == 3
    assert c.candidate.n % 20 == 0  # timed calls only: whole blocks, no opening calls


def test_errors_in_a_block_opening_still_count() -> None:
    calls = {"n": 0}

    def candidate() -> None:
        calls["n"] += 1
        if calls["n"] % 25 == 1:  # the first call of each block after the cold one
            raise RuntimeError("failed while cold")

    c = compare(lambda: None, candidate, quantile=0.5, block=24, spec=SPEC, block_warmup=1)
    assert c.decision is Decision.FAIL, c.summary()
    assert c.candidate.errors > 0


@pytest.mark.parametrize("bad", [-1, 1.5, True, 10_001])
def test_a_bad_block_warmup_is_refused_by_name(bad: object) -> None:
    with pytest.raises(SpecError, match=r"block_warmup=.* is not valid; expected a whole number"):
        compare(lambda: None, lambda: None, spec=SPEC, block_warmup=bad)  # type: ignore[arg-type]
