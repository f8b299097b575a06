"""Goodput: the share of calls that answer right within a latency bound, decided with a
one-sided Clopper-Pearson bound, on every driver (serial, closed loop, open loop; sync and
async)."""

from __future__ import annotations

import asyncio
import itertools
import math
import threading
import time

import numpy as np
import pytest

from pytest_latency.core.external import judge
from pytest_latency.core.runner import measure
from pytest_latency.core.spec import Spec, SpecError
from pytest_latency.core.stats import clopper_pearson
from pytest_latency.core.verdict import Decision


def _spec(**kw: object) -> Spec:
    return Spec(**kw).resolved({})  # type: ignore[arg-type]


class Answers:
    """A callable answering i % 7 for its i-th call, wrong (-1) on every `every`-th call."""

    def __init__(self, every: int = 0, sleep_s: float = 0.0) -> None:
        self.every, self.sleep_s = every, sleep_s
        self._count = itertools.count(1)
        self._lock = threading.Lock()
        self.wrong = 0

    def __call__(self) -> int:
        with self._lock:
            i = next(self._count)
        if self.sleep_s:
            time.sleep(self.sleep_s)
        if self.every and i % self.every == 0:
            with self._lock:
                self.wrong += 1
            return -1
        return i % 7


def right(answer: int) -> bool:
    return answer >= 0


def goodput_row(m):  # type: ignore[no-untyped-def]
    return next(t for t in m.verdict.targets if t.metric == "goodput")


def test_wrong_answers_fail_goodput_while_p99_passes() -> None:
    fn = Answers(every=20)  # 5 % wrong, all fast
    m = measure(fn, spec=_spec(p99_ms=1000, goodput=0.99, goodput_ms=1000), check=right)
    row = goodput_row(m)
    p99 = next(t for t in m.verdict.targets if t.metric == "p99")
    assert p99.decision is Decision.PASS
    assert row.decision is Decision.FAIL
    assert m.verdict.decision is Decision.FAIL
    # Warm-up calls were judged too but are not counted: only the timed ones are.
    assert 0.04 < m.samples.wrong / m.samples.n < 0.06
    assert row.upper is not None
    assert row.upper < 0.99
    assert row.observed == pytest.approx(1 - m.samples.wrong / m.samples.n)
    assert "FAIL: goodput" in m.verdict.summary()
    assert f"{m.samples.wrong} wrong answer(s)" in row.note


def test_right_and_fast_answers_pass() -> None:
    m = measure(Answers(), spec=_spec(goodput=0.99, goodput_ms=1000), check=right)
    row = goodput_row(m)
    assert row.decision is Decision.PASS
    assert m.samples.wrong == 0
    assert row.lower is not None
    assert row.lower >= 0.99


def test_right_but_slower_than_the_bound_is_not_good() -> None:
    # Every answer right, every one over the 1 ms bound: goodput 0.
    m = measure(
        Answers(sleep_s=0.003),
        spec=_spec(goodput=0.5, goodput_ms=1, max_time_s=5),
        check=right,
    )
    row = goodput_row(m)
    assert m.samples.wrong == 0
    assert row.decision is Decision.FAIL
    assert row.observed == 0.0


@pytest.mark.parametrize("concurrency", [1, 4])
def test_closed_loop_threads_count_every_wrong_answer(concurrency: int) -> None:
    fn = Answers(every=10)
    spec = _spec(goodput=0.99, goodput_ms=1000, concurrency=concurrency, warmup=0)
    m = measure(fn, spec=spec, check=right)
    # Every call but the cold start was timed and judged: no wrong answer lost or doubled.
    cold_wrong = 0  # the first call (i=1) is right
    assert m.samples.wrong == fn.wrong - cold_wrong
    assert goodput_row(m).decision is Decision.FAIL


@pytest.mark.parametrize("concurrency", [1, 3])
def test_async_callables_are_judged_too(concurrency: int) -> None:
    fn = Answers(every=10)

    async def answer() -> int:
        await asyncio.sleep(0)
        return fn()

    spec = _spec(goodput=0.99, goodput_ms=1000, concurrency=concurrency, warmup=0)
    m = measure(answer, spec=spec, check=right)
    assert m.samples.wrong == fn.wrong
    assert goodput_row(m).decision is Decision.FAIL


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_open_loop_counts_wrong_answers_by_arrival(kind: str) -> None:
    fn = Answers(every=10)

    async def answer() -> int:
        return fn()

    target = fn if kind == "sync" else answer
    spec = _spec(goodput=0.99, goodput_ms=1000, rate_rps=400, warmup=0, max_time_s=10)
    m = measure(target, spec=spec, check=right)
    assert m.samples.load.mode == "open"
    assert m.samples.wrong > 0
    assert 0.05 < m.samples.wrong / m.samples.n < 0.15
    assert goodput_row(m).decision is Decision.FAIL


def test_a_check_that_raises_makes_the_call_an_error_with_its_traceback() -> None:
    def picky(answer: int) -> bool:
        raise KeyError(f"no expected label for {answer}")

    m = measure(Answers(), spec=_spec(goodput=0.9, goodput_ms=1000), check=picky)
    assert m.verdict.decision is Decision.FAIL
    assert m.samples.errors >= 1
    assert m.samples.first_error is not None
    assert "no expected label" in m.samples.first_error


def test_a_goodput_target_without_a_check_is_refused_before_measuring() -> None:
    calls = []
    with pytest.raises(SpecError, match=r"goodput=0.99 needs check="):
        measure(lambda: calls.append(1), spec=_spec(goodput=0.99, goodput_ms=10))
    assert calls == []
    with pytest.raises(SpecError, match=r"check=3 is not valid"):
        measure(int, spec=_spec(goodput=0.99, goodput_ms=10), check=3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"goodput": 1.0, "goodput_ms": 10}, r"goodput=1.0 is not valid; expected the share"),
        ({"goodput": 0, "goodput_ms": 10}, r"goodput=0 is not valid"),
        ({"goodput": "99%", "goodput_ms": 10}, r"goodput='99%' is not valid"),
        ({"goodput": 0.99}, r"goodput=0.99 needs goodput_ms"),
        ({"goodput_ms": 10}, r"goodput_ms=10 needs goodput"),
        ({"goodput": 0.99, "goodput_ms": -1}, r"goodput_ms=-1 is not valid"),
        (
            {"goodput": 0.99, "goodput_ms": 10, "rate_rps": 10, "engine": "locust"},
            r"goodput with engine='locust'",
        ),
    ],
)
def test_bad_goodput_keywords_are_refused_naming_the_value(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        Spec.from_kwargs(**kwargs)


def test_goodput_alone_is_a_target_and_is_described() -> None:
    spec = Spec.from_kwargs(goodput=0.99, goodput_ms=10)
    assert spec.describe() == "goodput>=0.99@10ms"


# -- the bound itself, on samples handed in whole -----------------------------------------


def test_the_bounds_are_one_sided_clopper_pearson_on_good_calls() -> None:
    latencies = [2.0] * 990 + [50.0] * 10  # 10 slow
    flags = np.ones(1000, dtype=bool)
    flags[:5] = False  # 5 fast but wrong
    m = judge(latencies, {"goodput": 0.9, "goodput_ms": 10}, right=flags, errors=5)
    row = goodput_row(m)
    good, total = 985, 1005  # 990 fast, 5 of them wrong; the 5 errors count in the total
    assert row.n == total
    alpha = 0.05
    assert row.lower == pytest.approx(clopper_pearson(good, total, alpha)[0])
    assert row.upper == pytest.approx(clopper_pearson(good, total, alpha)[1])
    assert row.observed == pytest.approx(good / total)
    assert row.exceedances == total - good
    assert row.decision is Decision.PASS


def test_unfinished_requests_are_not_good_for_the_lower_bound_and_may_be_for_the_upper() -> None:
    flags = np.ones(300, dtype=bool)
    spec = {"goodput": 0.95, "goodput_ms": 10, "max_error_rate": 0.5}
    m = judge([1.0] * 300, spec, right=flags, unfinished_ms=[3.0] * 30)
    row = goodput_row(m)
    # 30 requests waited 3 ms and never answered: they may still have answered in 10 ms.
    assert row.lower == pytest.approx(clopper_pearson(300, 330, 0.05)[0])
    assert row.upper == pytest.approx(clopper_pearson(330, 330, 0.05)[1])
    assert row.decision is Decision.INCONCLUSIVE
    assert row.samples_to_decide is not None
    assert row.samples_to_decide > 330
    assert "INCONCLUSIVE: goodput" in m.verdict.summary()


def test_judge_needs_one_right_flag_per_latency_for_goodput() -> None:
    spec = {"goodput": 0.9, "goodput_ms": 10}
    with pytest.raises(SpecError, match=r"goodput needs right="):
        judge([1.0, 2.0], spec)
    with pytest.raises(SpecError, match=r"one bool per latency \(2\), got bool of shape \(3,\)"):
        judge([1.0, 2.0], spec, right=[True, True, False])
    with pytest.raises(SpecError, match=r"one bool per latency"):
        judge([1.0, 2.0], spec, right=[1, 0])


def test_calls_to_decide_grow_as_the_estimate_nears_the_target() -> None:
    far = judge([1.0] * 100, {"goodput": 0.55, "goodput_ms": 10}, right=[True] * 60 + [False] * 40)
    near = judge([1.0] * 100, {"goodput": 0.58, "goodput_ms": 10}, right=[True] * 60 + [False] * 40)
    far_row, near_row = goodput_row(far), goodput_row(near)
    assert far_row.decision is Decision.INCONCLUSIVE
    assert near_row.decision is Decision.INCONCLUSIVE
    assert far_row.samples_to_decide is not None
    assert near_row.samples_to_decide is not None
    assert near_row.samples_to_decide > far_row.samples_to_decide > 100
    assert math.isfinite(near_row.samples_to_decide)
