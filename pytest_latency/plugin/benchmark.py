"""pytest-benchmark interop: ``slo`` gates on its timings, and its JSON format for our results.

An ``@pytest.mark.slo`` on a test that uses pytest-benchmark's ``benchmark`` fixture (and not
``latency``) is decided on pytest-benchmark's own per-round times once the test body has run::

    @pytest.mark.slo(p99_ms=10)
    def test_parse(benchmark):
        benchmark(parse, payload)          # pytest-benchmark times it; the SLO is decided after

Each sample is one round of ``stats.data`` (seconds, already divided by the round's
``iterations``). When pytest-benchmark calibrated ``iterations > 1`` (calls under about 5 us),
a sample is the *mean of that many calls*: the percentiles are of per-round means and
understate the per-call tail, and the report says so. ``benchmark.pedantic(fn, rounds=N,
iterations=1)`` times single calls. The sample count is pytest-benchmark's round count
(``--benchmark-max-time``, ``--benchmark-min-rounds``), so the marker's sampling and load
keywords are refused. Under ``--benchmark-disable`` (and under xdist, where pytest-benchmark
disables itself) nothing is timed: the test keeps its own outcome and a warning says the SLO
was not checked.

``--latency-benchmark-json=PATH`` writes this run's latency results in the format of
``pytest --benchmark-json`` (see `writers.benchmark_json`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from ..core.spec import Spec
from .failures import PytestLatencyWarning
from .keys import BENCHMARK_FIXTURE, BENCHMARK_PLUGIN, RESULTS_KEY, SETTINGS_KEY, SPEC_KEY
from .markers import check_benchmark_spec, marker_spec

if TYPE_CHECKING:  # numpy underneath: imported when a benchmark test is decided, not before
    from ..core.result import Result

BENCHMARK_SOURCE = "pytest-benchmark"


def configure(config: pytest.Config) -> None:
    config.pluginmanager.register(BenchmarkSlo(config), BENCHMARK_PLUGIN)


def rounds_result(
    data_s: Sequence[float], iterations: int, spec: Spec, nodeid: str
) -> tuple[Result, dict[str, Any]]:
    """Decide `spec` on pytest-benchmark's per-round times (seconds per call); return the
    `Result` and its JSON form, marked with where the samples came from."""
    # numpy and the core's measurement modules: loaded when a benchmark test is decided.
    import numpy as np

    from ..core.evaluate import evaluate
    from ..core.result import Result
    from ..core.samples import Samples

    latencies = np.asarray([round(s * 1e9) for s in data_s], dtype=np.int64)
    samples = Samples(
        latencies_ns=latencies,
        # Rounds ran back to back, so calls per second is rounds / sum(per-call means),
        # pytest-benchmark's own "ops".
        wall_ns=int(latencies.sum()),
        looks=1,
        stopped_by=BENCHMARK_SOURCE,
    )
    verdict = evaluate(samples, spec, 1)  # one look: pytest-benchmark ran all its rounds
    label = BENCHMARK_SOURCE + (f", means of {iterations} calls" if iterations > 1 else "")
    result = Result(label, spec, samples, verdict, nodeid, named=True)
    data = result.to_dict()
    data.update(
        source=BENCHMARK_SOURCE,
        benchmark_iterations=iterations,
        per_round_means=iterations > 1,
        xdist_worker=os.environ.get("PYTEST_XDIST_WORKER"),
    )
    return result, data


def samples_note(n: int, iterations: int) -> str:
    if iterations <= 1:
        return f"samples: {n} pytest-benchmark rounds of one call each"
    return (
        f"samples: {n} pytest-benchmark rounds of {iterations} calls each (calibrated): "
        "each sample is a round's mean per call, so these percentiles are of "
        f"{iterations}-call means and understate the per-call tail; "
        "benchmark.pedantic(fn, rounds=N, iterations=1) times single calls"
    )


class BenchmarkSlo:
    """Decides ``slo`` markers of tests that use the ``benchmark`` fixture, after the body."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        yield  # the test body; if it raised, that is the outcome and nothing is decided
        self.check(item)

    def check(self, item: pytest.Item) -> None:
        funcargs: dict[str, Any] = getattr(item, "funcargs", {})
        if BENCHMARK_FIXTURE not in funcargs or "latency" in funcargs:
            return
        spec = item.stash.get(SPEC_KEY, None)
        if spec is None and item.get_closest_marker("slo") is not None:
            spec = marker_spec(item)
            if spec is not None:
                check_benchmark_spec(spec)
        if spec is None:
            return
        fixture = funcargs[BENCHMARK_FIXTURE]
        what = f"{item.nodeid} is marked @pytest.mark.slo"
        if getattr(fixture, "disabled", False):
            warnings.warn(
                PytestLatencyWarning(
                    f"{what} but pytest-benchmark is disabled (--benchmark-disable, or "
                    "pytest-xdist), so nothing was timed and its SLO was not checked; run "
                    "without --benchmark-disable (and without -n) to check it"
                ),
                stacklevel=1,
            )
            return
        meta = getattr(fixture, "stats", None)
        data = list(getattr(getattr(meta, "stats", None), "data", None) or ())
        if not data:
            pytest.fail(
                f"{what} but never called benchmark(fn, ...) or benchmark.pedantic(...): "
                "nothing was timed, so its SLO was not checked",
                pytrace=False,
            )
        iterations = int(getattr(meta, "iterations", 1) or 1)
        settings = item.config.stash[SETTINGS_KEY]
        if spec.confidence is None:
            spec = spec.merged({"confidence": settings.confidence})
        result, record = rounds_result(data, iterations, spec, item.nodeid)
        # The fixture module formats results with numpy: loaded once a benchmark test ran.
        from .fixture import user_properties

        item.user_properties.extend(user_properties(result))
        item.stash.setdefault(RESULTS_KEY, []).append(record)
        self.enforce(result, record, iterations, settings.inconclusive)

    def enforce(self, result: Result, record: dict[str, Any], iterations: int, policy: str) -> None:
        # Verdicts and their tables need numpy: loaded once a benchmark test ran.
        from ..core.verdict import Decision
        from ..report.table import failure_message

        decision = result.verdict.decision
        if decision is Decision.PASS:
            return

        message = (
            failure_message({k: v for k, v in record.items() if k != "samples_ns"})
            + "\n"
            + samples_note(result.n, iterations)
        )
        if decision is Decision.INCONCLUSIVE:
            message += (
                "\nmore rounds would decide it: raise --benchmark-max-time or "
                "@pytest.mark.benchmark(min_rounds=N), or use benchmark.pedantic(fn, rounds=N)"
            )
        if decision is Decision.FAIL or policy == "fail":
            if decision is Decision.INCONCLUSIVE:
                message += "\n\n(--latency-inconclusive=fail; 'warn' or 'pass' relax it)"
            pytest.fail(message, pytrace=False)
        if policy == "warn":
            warnings.warn(PytestLatencyWarning(message), stacklevel=1)
