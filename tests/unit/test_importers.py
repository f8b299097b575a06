"""Reading other tools' per-request logs: a real ``perf_analyzer`` profile export, made on the
development VM on 2026-11-30 against the reference system's Triton (INT8 model, CPU):

    perf_analyzer -m sentiment -u 127.0.0.1:PORT -i grpc --concurrency-range 1 \\
        --measurement-mode count_windows --measurement-request-count 150 \\
        --input-data data.json --profile-export-file export.json -p 3000

(perf_analyzer 2.51.0 from the tritonclient wheel; the file's request and response tensors
were removed to keep it small, nothing else.) What perf_analyzer printed for that run:

    Request count: 1041   Throughput: 346.094 infer/sec   Avg latency: 2882 usec
    p50 latency: 2701 usec   p90: 3382   p95: 3905   p99: 6736
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_latency import Decision, judge
from pytest_latency.core.importers import perf_analyzer_export
from pytest_latency.core.result import Result
from pytest_latency.core.spec import Spec, SpecError

EXPORT = Path(__file__).parent.parent / "data" / "perf_analyzer_2.51_concurrency1.json"


def test_the_samples_are_the_requests_perf_analyzer_reports_on() -> None:
    run = perf_analyzer_export(EXPORT)
    assert run.source == "perf_analyzer 2.51.0, concurrency 1"
    assert len(run.latencies_ms) == 1041
    assert len(run.unfinished_ms) == 0
    assert int(run.latencies_ms.mean() * 1000) == 2882
    assert len(run.latencies_ms) / run.wall_s == pytest.approx(346.094, abs=0.01)


def test_our_percentiles_agree_with_perf_analyzers_own() -> None:
    run = perf_analyzer_export(EXPORT)
    spec = Spec(p99_ms=10).resolved({})
    measured = judge(run.latencies_ms, spec, wall_s=run.wall_s, source=run.source)
    result = Result(run.source, spec, measured.samples, measured.verdict)
    printed_us = {0.5: 2701, 0.9: 3382, 0.95: 3905, 0.99: 6736}
    ours = {q: int(result.percentile_ms(q) * 1000) for q in printed_us}
    assert ours == printed_us


def test_a_verdict_on_the_export() -> None:
    run = perf_analyzer_export(EXPORT)
    fast_enough = judge(run.latencies_ms, {"p99_ms": 10}, wall_s=run.wall_s)
    assert fast_enough.verdict.decision is Decision.PASS
    too_slow = judge(run.latencies_ms, {"p99_ms": 4}, wall_s=run.wall_s)
    assert too_slow.verdict.decision is Decision.FAIL
    rate = judge(run.latencies_ms, {"min_rps": 300}, wall_s=run.wall_s)
    assert rate.verdict.decision is Decision.PASS


def test_every_window_when_asked() -> None:
    assert len(perf_analyzer_export(EXPORT, windows=None).latencies_ms) == 1363
    assert len(perf_analyzer_export(EXPORT, windows=1).latencies_ms) < 1041


def test_a_request_without_a_response_is_unfinished(tmp_path: Path) -> None:
    doc = json.loads(EXPORT.read_text())
    requests = doc["experiments"][0]["requests"]
    requests[-1]["response_timestamps"] = []
    path = tmp_path / "export.json"
    path.write_text(json.dumps(doc))
    run = perf_analyzer_export(path)
    assert len(run.unfinished_ms) == 1
    assert run.unfinished_ms[0] >= 0


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        ("{not json", {}, r"not a perf_analyzer profile export \(JSONDecodeError"),
        ('{"version": "2.51.0"}', {}, r"not a perf_analyzer profile export \(KeyError"),
        (None, {"experiment": 3}, r"experiment=3 is not valid .* holds 1 experiment"),
        (None, {"windows": 0}, r"windows=0 is not valid; expected a count >= 1, or None"),
    ],
)
def test_bad_files_and_arguments_are_refused_naming_them(
    tmp_path: Path, content: str | None, kwargs: dict[str, int], message: str
) -> None:
    path = EXPORT
    if content is not None:
        path = tmp_path / "bad.json"
        path.write_text(content)
    with pytest.raises(SpecError, match=message):
        perf_analyzer_export(path, **kwargs)  # type: ignore[arg-type]
