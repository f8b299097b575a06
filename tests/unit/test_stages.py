"""Latency budgets: stage spans recorded only while timing, decided per stage."""

from __future__ import annotations

import threading
import time

import pytest

from pytest_latency import Spec, record_stage, stage
from pytest_latency.core.runner import measure
from pytest_latency.core.spec import SpecError
from pytest_latency.core.stages import StageRecorder, recording
from pytest_latency.core.verdict import Decision


def _pipeline() -> None:
    with stage("tokenise"):
        time.sleep(0.0002)
    with stage("inference"):
        time.sleep(0.001)
    record_stage("transport", 50_000)


def test_spans_outside_a_measurement_are_free_no_ops() -> None:
    _pipeline()  # nothing active: must not raise nor record anywhere
    recorder = StageRecorder()
    with recording(recorder):
        _pipeline()
    assert {k: len(v) for k, v in recorder.arrays().items()} == {
        "tokenise": 1,
        "inference": 1,
        "transport": 1,
    }


def test_only_timed_calls_record_spans_not_warm_up_or_the_cold_call() -> None:
    m = measure(_pipeline, spec=Spec(p99_ms=50, budget={"inference": 20}, warmup=25).resolved({}))
    assert len(m.samples.stages["inference"]) == m.samples.n


def test_each_budget_stage_is_decided_with_its_own_bounds() -> None:
    m = measure(
        _pipeline,
        spec=Spec(budget={"inference": 20, "tokenise": 0.05}, max_time_s=10).resolved({}),
    )
    rows = {t.metric: t for t in m.verdict.targets}
    assert rows["inference.p99"].decision is Decision.PASS
    assert rows["tokenise.p99"].decision is Decision.FAIL  # a 0.2 ms sleep is over 0.05 ms
    assert rows["tokenise.p99"].lower is not None
    assert rows["tokenise.p99"].lower > 0.05


def test_a_budget_stage_that_is_never_recorded_fails_with_what_was_recorded() -> None:
    m = measure(_pipeline, spec=Spec(p99_ms=50, budget={"cache": 5}).resolved({}))
    assert m.verdict.decision is Decision.FAIL
    assert "no spans were recorded" in m.verdict.summary()
    assert "'inference', 'tokenise', 'transport'" in m.verdict.summary()


def test_spans_from_worker_threads_all_land_in_the_recorder() -> None:
    m = measure(
        _pipeline, spec=Spec(p99_ms=50, budget={"inference": 20}, concurrency=4).resolved({})
    )
    assert len(m.samples.stages["inference"]) == m.samples.n
    assert threading.active_count() >= 1


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        ({}, "budget={} is not valid"),
        ({"inference": -1}, r"budget\['inference'\]=-1 is not valid"),
        ({"": 3}, "budget stage '' is not valid"),
        ([("inference", 3)], "expected a non-empty mapping"),
    ],
)
def test_bad_budgets_are_refused(budget: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        Spec(budget=budget)  # type: ignore[arg-type]
