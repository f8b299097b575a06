"""Chapter 1 of the playbook as tests: the model itself, batch 1, realistic review lengths.

The PyTorch FP32 baseline misses a 10 ms p99 on 2 CPU threads; the ONNX Runtime INT8 model
(transformer fusion + dynamic quantisation) meets it with margin, is at least twice as fast at
p99 in the same run, and gives up at most one accuracy point on the held-out split. One rung
further, a 3-layer student distilled from it (same export, fusion and INT8 steps) is at least
1.5x faster again at p99 and stays within two accuracy points of the PyTorch FP32 teacher.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from pytest_latency import LatencyMissed

pytestmark = pytest.mark.slo


def one_at_a_time(predictor: Any, texts: Sequence[str]) -> Callable[[], Any]:
    """A batch-1 request per call, cycling through real review snippets."""
    stream = itertools.cycle(texts)
    predict = predictor.predict
    return lambda: predict([next(stream)])


def labels_of(predictor: Any, batch_size: int = 1) -> Callable[[Sequence[str]], list[int]]:
    """The predictor's labels at `batch_size`: 1 by default, as the services run the INT8
    models. INT8 dynamic quantisation scales each activation over the whole (padded) batch,
    so the same model labels some held-out reviews differently at batch 64 than at batch 1:
    a gate on batched labels would check predictions the service never makes (figures:
    docs/reference_system.md, "Figures that used to sit in code comments"). FP32 has no
    activation scales; its labels are batched to save time."""
    from reference_system.predictors import evaluate

    def run(texts: Sequence[str]) -> list[int]:
        _, prediction = evaluate(predictor, list(texts), [0] * len(texts), batch_size=batch_size)
        return prediction.labels.tolist()

    return run


@pytest.mark.xfail(
    strict=True,
    raises=LatencyMissed,
    reason="PyTorch FP32 eager, batch 1, 2 threads: p50 6.5-9.8 ms, p99 10.2-16 ms on this "
    "host (docs/reference_system.md); the playbook's fix is export + fusion + INT8",
)
# Up to 240 s: on the host's quietest minutes the p99 sits just over 10 ms (10.24 [9.92,
# 10.62] after 60 s, 8,915 samples: INCONCLUSIVE), and only more samples decide it. A busy
# host decides at the first look (a few seconds).
@pytest.mark.slo(p99_ms=10, max_time_s=240)
def test_pytorch_fp32_baseline_misses_a_10ms_p99(latency, fp32, review_texts, quiet_host):
    # Decided on the host in its reference state (`quiet_host.decides_a_miss`): in a minute
    # when the host ran 1.22x faster than that (INT8 probe 1.67 ms against 2.04) FP32 met
    # 10 ms (p99 8.89 [8.31, 9.47]); docs/reference_system.md.
    with quiet_host.decides_a_miss(latency):
        latency(one_at_a_time(fp32, review_texts), name="torch-fp32")


@pytest.mark.slo(p99_ms=10, max_time_s=60)
def test_onnx_runtime_int8_meets_a_10ms_p99(latency, int8, review_texts):
    result = latency(one_at_a_time(int8, review_texts), name="ort-int8-dynamic")
    upper = result.bounds["p99"][1]
    assert upper is not None
    assert upper <= 10


# Blocks of 500 calls, not 50: each runtime leaves its thread pool spinning for a while after
# its block, and the first calls of the next block pay for it; with 50-call blocks that went
# straight into INT8's p99 (docs/reference_system.md, "Figures that used to sit in code
# comments"). 500-call blocks put the neighbour's spin-down under the 1 % tail; they still
# alternate about every 6 s, well inside the drift this comparison is there to cancel, and
# min_samples=3000 makes at least six rounds (one 500-call round already decided some runs,
# alternating nothing).
@pytest.mark.slo(p99_ms=10, max_time_s=240, min_samples=3000)
def test_int8_p99_is_at_least_twice_as_fast_as_fp32_in_the_same_run(
    latency, fp32, int8_beside_torch, review_texts
):
    comparison = latency.speedup(
        one_at_a_time(int8_beside_torch, review_texts),
        one_at_a_time(fp32, review_texts),
        min_speedup=2.0,
        block=500,  # ORT's thread pool must not interleave call by call with PyTorch
        names=("ort-int8-dynamic", "torch-fp32"),
    )
    assert comparison.lower is not None
    assert comparison.lower >= 2.0


@pytest.mark.accuracy(max_drop=0.01)
def test_int8_loses_at_most_one_accuracy_point(accuracy_gate, fp32, int8, splits):
    result = accuracy_gate(
        labels_of(int8),
        labels_of(fp32, batch_size=64),
        list(splits.test.texts),
        list(splits.test.labels),
    )
    assert result.reference_accuracy >= 0.82


# Two ONNX Runtime sessions, both with idle threads asleep (int8_beside_torch, int8_student).
# With spinning threads the two of them fill both cores, and any other process preempts one:
# the p99 ratio then scattered around a steady p50 ratio (docs/reference_system.md, "Figures
# that used to sit in code comments"). No PyTorch pool to keep apart, so 200-call blocks
# (under a second) do; min_samples=2000: ten rounds first.
@pytest.mark.slo(p99_ms=10, max_time_s=120, min_samples=2000)
def test_int8_student_p99_is_at_least_1_5x_faster_than_the_6_layer_int8_in_the_same_run(
    latency, int8_beside_torch, int8_student, review_texts
):
    comparison = latency.speedup(
        one_at_a_time(int8_student, review_texts),
        one_at_a_time(int8_beside_torch, review_texts),
        min_speedup=1.5,
        block=200,
        names=("ort-int8-student", "ort-int8-dynamic"),
    )
    assert comparison.lower is not None
    assert comparison.lower >= 1.5


@pytest.mark.accuracy(max_drop=0.02)
def test_int8_student_loses_at_most_two_accuracy_points_to_the_fp32_teacher(
    accuracy_gate, fp32, int8_student, splits
):
    result = accuracy_gate(
        labels_of(int8_student),
        labels_of(fp32, batch_size=64),
        list(splits.test.texts),
        list(splits.test.labels),
    )
    assert result.reference_accuracy >= 0.82


# The 10 ms claim above holds for *reviews*: 20-60 word pieces. The worst-case search asks what
# input is slowest. Its target here is relative -- 2.5x a review's median, measured first in the
# same run -- so the claim is about the model's shape, not this host's speed: climbing on the
# measured latency, the search ends on texts well past any review's length in word pieces
# (long ones, or ones whose characters each become a piece), and shrinks to the shortest that
# is still that slow. Latency grows with word pieces; an SLO on reviews says nothing about a
# 2,000-character paste.
def test_worst_case_search_finds_that_latency_grows_with_word_pieces(latency, int8, review_texts):
    from hypothesis import strategies as st

    encode = int8._encode  # the predictor's own tokenizer: truncation at 128 word pieces

    def pieces(text: str) -> int:
        return int(encode([text])["attention_mask"].sum())

    reviews = latency(
        one_at_a_time(int8, review_texts), slo={"p50_ms": 1000, "max_time_s": 10}, name="reviews"
    )
    target_ms = 2.5 * reviews.percentile_ms(0.5)
    # 200 examples: at 60 the search missed in 3 of 20 seeds (and in one ./dev slo run), never
    # leaving 3 word pieces; at 200 it found and shrank a miss in 20 of 20, in 3.6 s median
    # (docs/benchmarks.md, "Worst-case input search"). Stopping at the first shrunk miss, a
    # larger budget costs nothing when the search succeeds early.
    with pytest.raises(LatencyMissed, match="smallest input that misses"):
        latency.worst_case(
            lambda text: int8.predict([text]),
            st.text(max_size=2000),
            slo={"p50_ms": target_ms, "max_time_s": 20},
            examples=200,
            keep=2,  # the shrunk input sits on the target; the slowest one is clearly over
            name="ort-int8-dynamic",
        )
    found = latency.searches[-1]
    lengths = sorted(pieces(t) for t in review_texts)
    typical, longest = lengths[len(lengths) // 2], lengths[-1]
    worst = found.inputs[0]
    assert pieces(worst) > max(2 * typical, longest), (pieces(worst), typical, longest, worst)
    assert any(r.verdict.failed for r in found.results)
