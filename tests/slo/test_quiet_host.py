"""The seam of `quiet_host` (tests/slo/conftest.py): which verdicts a busy host may turn into a
skip. A fake model (its speed chosen by the test) and fake results; the real probe runs."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from pytest_latency import LatencyMissed, SloFailure
from pytest_latency.core.compare import Comparison
from pytest_latency.core.samples import Samples
from pytest_latency.core.verdict import Decision

from .conftest import QUIET_PROBE_MS, QuietHost


class Model:
    def __init__(self, ms: float) -> None:
        self.ms = ms

    def predict(self, texts: list[str]) -> None:
        if self.ms:
            time.sleep(self.ms / 1000)


def host(ms: float) -> QuietHost:
    return QuietHost(Model(ms), ["a review"] * 40, SimpleNamespace(user_properties=[]))  # type: ignore[arg-type]


BUSY_MS = QUIET_PROBE_MS * 1.6  # sleep granularity only adds to it
QUIET_MS = 0.0


def latency_with(decision: Decision, problems: tuple[str, ...] = (), metric: str = "p99") -> Any:
    target = SimpleNamespace(metric=metric, decision=decision)
    verdict = SimpleNamespace(decision=decision, problems=problems, targets=[target])
    return SimpleNamespace(results=[SimpleNamespace(verdict=verdict)])


def test_a_fail_on_a_busy_host_is_skipped_with_the_figures() -> None:
    quiet_host = host(BUSY_MS)
    with (
        pytest.raises(pytest.skip.Exception) as info,
        quiet_host.decides(latency_with(Decision.FAIL)),
    ):
        raise LatencyMissed("FAIL: p99 is over 10 ms\nthe table", pytrace=False)
    message = str(info.value)
    assert "the host was busy" in message
    assert "FAIL: p99 is over 10 ms" in message
    assert f"against {QUIET_PROBE_MS} ms on the quiet host" in message
    assert len(quiet_host.probes) == 2  # before and after


def test_an_inconclusive_verdict_on_a_busy_host_is_skipped_too() -> None:
    with (
        pytest.raises(pytest.skip.Exception),
        host(BUSY_MS).decides(latency_with(Decision.INCONCLUSIVE)),
    ):
        raise SloFailure("INCONCLUSIVE: p99 straddles", pytrace=False)


def test_a_fail_on_a_quiet_host_stands_and_keeps_its_type() -> None:
    with pytest.raises(LatencyMissed) as info, host(QUIET_MS).decides(latency_with(Decision.FAIL)):
        raise LatencyMissed("FAIL: p99 is over 10 ms", pytrace=False)
    assert "FAIL: p99 is over 10 ms" in str(info.value)
    assert "the host was quiet" in str(info.value)


@pytest.mark.parametrize(
    "latency",
    [
        latency_with(Decision.FAIL, problems=("3 calls hung",)),
        latency_with(Decision.FAIL, metric="error_rate"),
        SimpleNamespace(results=[]),  # failed before any result: a crash, not a verdict
    ],
    ids=["hung calls", "errors", "no result"],
)
def test_a_broken_measurement_fails_however_busy_the_host(latency: Any) -> None:
    with pytest.raises(SloFailure, match="broken"), host(BUSY_MS).decides(latency):
        raise SloFailure("broken", pytrace=False)


def test_a_pass_is_left_alone_and_probed_once() -> None:
    quiet_host = host(BUSY_MS)
    with quiet_host.decides(latency_with(Decision.PASS)):
        pass
    assert len(quiet_host.probes) == 1
    assert quiet_host.probes[0] > QUIET_PROBE_MS


def comparison_with(decision: Decision, problems: tuple[str, ...] = ()) -> Any:
    """A `latency` whose last result is a same-run comparison (`latency.speedup`)."""
    samples = Samples(latencies_ns=np.full(400, 1_000_000, dtype=np.int64))
    comparison = Comparison(
        "baseline", "colocated", samples, samples, 0.99, 5.0, 4.47, 3.82, 5.80,
        decision, 0.95, 0.05, 1, 100, 4, problems=problems,
    )  # fmt: skip
    return SimpleNamespace(results=[comparison])


def test_an_undecided_comparison_on_a_busy_host_is_skipped_with_the_figures() -> None:
    quiet_host = host(BUSY_MS)
    with (
        pytest.raises(pytest.skip.Exception) as info,
        quiet_host.decides(comparison_with(Decision.INCONCLUSIVE)),
    ):
        raise SloFailure("INCONCLUSIVE: cannot tell whether colocated is 5x faster", pytrace=False)
    assert "the host was busy" in str(info.value)
    assert "5x faster" in str(info.value)
    assert len(quiet_host.probes) == 2


def test_a_failed_comparison_on_a_quiet_host_stands() -> None:
    with (
        pytest.raises(LatencyMissed, match="the host was quiet"),
        host(QUIET_MS).decides(comparison_with(Decision.FAIL)),
    ):
        raise LatencyMissed("FAIL: colocated is less than 5x faster", pytrace=False)


def test_a_comparison_with_hung_calls_fails_however_busy_the_host() -> None:
    broken = comparison_with(Decision.FAIL, problems=("colocated: 2 call(s) did not return",))
    with pytest.raises(SloFailure, match="did not return"), host(BUSY_MS).decides(broken):
        raise SloFailure("FAIL: colocated: 2 call(s) did not return", pytrace=False)


# `decides_a_miss`: the strict xfails that claim a miss, against a host running faster.


def test_a_claimed_miss_that_passed_on_a_faster_host_is_skipped_with_the_figures() -> None:
    latency = latency_with(Decision.PASS)
    latency.results[0].verdict.passed = True
    latency.results[0].verdict.summary = lambda: "PASS: all 1 target(s) met"
    quiet_host = host(QUIET_MS)  # a probe far under the reference: a faster host
    with pytest.raises(pytest.skip.Exception) as info, quiet_host.decides_a_miss(latency):
        pass
    assert "the host ran faster than its reference state" in str(info.value)
    assert "PASS: all 1 target(s) met" in str(info.value)
    assert len(quiet_host.probes) == 2


def test_a_claimed_miss_that_passed_on_the_reference_host_stands() -> None:
    latency = latency_with(Decision.PASS)
    latency.results[0].verdict.passed = True
    latency.results[0].verdict.summary = lambda: "PASS"
    with host(QUIET_PROBE_MS).decides_a_miss(latency):
        pass  # no skip: the strict xfail then fails, as it should


def test_the_expected_miss_is_never_touched_however_fast_the_host() -> None:
    with (
        pytest.raises(LatencyMissed),
        host(QUIET_MS).decides_a_miss(latency_with(Decision.FAIL)),
    ):
        raise LatencyMissed("FAIL: p99 is over 10 ms", pytrace=False)


def test_an_undecided_claimed_miss_on_a_faster_host_is_skipped() -> None:
    with (
        pytest.raises(pytest.skip.Exception),
        host(QUIET_MS).decides_a_miss(latency_with(Decision.INCONCLUSIVE)),
    ):
        raise SloFailure("INCONCLUSIVE: p99 straddles", pytrace=False)


# `decides(..., faster_too=True)`: the same-run 5x against the queue-bound baseline.


def test_an_undecided_ratio_on_a_faster_host_is_skipped_with_the_figures() -> None:
    quiet_host = host(QUIET_MS)  # a probe far under the reference: a faster host
    with (
        pytest.raises(pytest.skip.Exception) as info,
        quiet_host.decides(comparison_with(Decision.INCONCLUSIVE), faster_too=True),
    ):
        raise SloFailure("INCONCLUSIVE: cannot tell whether colocated is 5x faster", pytrace=False)
    assert "the host ran faster than its reference state" in str(info.value)
    assert "5x faster" in str(info.value)
    assert len(quiet_host.probes) == 2


def test_an_undecided_ratio_on_a_faster_host_stands_without_faster_too() -> None:
    with (
        pytest.raises(SloFailure, match="the host was quiet"),
        host(QUIET_MS).decides(comparison_with(Decision.INCONCLUSIVE)),
    ):
        raise SloFailure("INCONCLUSIVE: cannot tell whether colocated is 5x faster", pytrace=False)


def test_a_failed_ratio_on_the_reference_host_stands_with_faster_too() -> None:
    with (
        pytest.raises(LatencyMissed, match="the host was quiet"),
        host(QUIET_PROBE_MS * 0.97).decides(comparison_with(Decision.FAIL), faster_too=True),
    ):
        raise LatencyMissed("FAIL: colocated is less than 5x faster", pytrace=False)


def test_a_broken_ratio_fails_on_a_faster_host_too() -> None:
    broken = comparison_with(Decision.FAIL, problems=("baseline: the load generator fell behind",))
    with (
        pytest.raises(SloFailure, match="fell behind"),
        host(QUIET_MS).decides(broken, faster_too=True),
    ):
        raise SloFailure("FAIL: baseline: the load generator fell behind", pytrace=False)
