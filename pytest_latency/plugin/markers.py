"""The ``slo``, ``accuracy`` and ``gpu`` markers: their registered signatures, how the
keywords of every marker on a test merge (nearer wins), and the checks that make a bad
marker a collection error naming the test, before anything is measured."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ..core.spec import AccuracySpec, Spec, SpecError
from .failures import PytestLatencyWarning
from .keys import ACCURACY_KEY, BENCHMARK_FIXTURE, SETTINGS_KEY, SPEC_KEY

SLO_MARKER = (
    "slo(p50_ms=None, p90_ms=None, p95_ms=None, p99_ms=None, p999_ms=None, max_ms=None, "
    "cold_start_ms=None, min_rps=None, max_error_rate=0, goodput=None, goodput_ms=None, "
    "confidence=0.95, warmup='auto', "
    "min_samples=None, max_samples=None, max_time_s=None, concurrency=1, rate_rps=None, "
    "arrivals='poisson', gc='off', budget=None, regression=None): a latency SLO that the "
    "`latency` fixture measures and enforces with stated confidence (regression: the slowdown "
    "allowed against --latency-compare's saved run, a share); a bare @pytest.mark.slo only "
    "tags a test for -m slo. Example: "
    "@pytest.mark.slo(p99_ms=10, p50_ms=4) def test_fast(latency): latency(fn)"
)
ACCURACY_MARKER = (
    "accuracy(max_drop=0.01, min_agreement=None, confidence=0.95): the `accuracy_gate` "
    "fixture checks that a candidate model loses at most max_drop accuracy (a share) against "
    "a reference on the same examples, with stated confidence. Example: "
    "@pytest.mark.accuracy(max_drop=0.01) def test_int8(accuracy_gate): "
    "accuracy_gate(int8, fp32, texts, labels)"
)
GPU_MARKER = "gpu: needs a CUDA GPU (onnxruntime-gpu / TensorRT); skipped without one"
MARKERS = (SLO_MARKER, ACCURACY_MARKER, GPU_MARKER)

# Marker keywords a pytest-benchmark run cannot honour, and what to use instead.
UNSUPPORTED_WITH_BENCHMARK: dict[str, str] = {
    "rate_rps": "pytest-benchmark calls the function back to back (a closed loop of one); "
    "use the `latency` fixture for an open loop",
    "arrivals": "it shapes an open loop, which pytest-benchmark cannot run; use `latency`",
    "concurrency": "pytest-benchmark calls the function from one thread; use `latency` "
    "for concurrent workers",
    "cold_start_ms": "pytest-benchmark does not time the first call apart; use `latency`",
    "budget": "stage spans are recorded only inside `latency`'s timed blocks",
    "warmup": "pytest-benchmark warms up on its own: --benchmark-warmup or "
    "@pytest.mark.benchmark(warmup=True, warmup_iterations=N)",
    "min_samples": "pytest-benchmark decides the rounds: --benchmark-min-rounds or "
    "@pytest.mark.benchmark(min_rounds=N)",
    "max_samples": "pytest-benchmark decides the rounds: --benchmark-max-time",
    "max_time_s": "pytest-benchmark's time budget is --benchmark-max-time or "
    "@pytest.mark.benchmark(max_time=S)",
    "gc": "pytest-benchmark's is --benchmark-disable-gc",
}


def register(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)


def _marker_kwargs(item: pytest.Item, name: str, example: str) -> dict[str, Any]:
    """Keywords of every `name` marker on the item, module first, nearest last (nearer wins)."""
    merged: dict[str, Any] = {}
    for mark in reversed(list(item.iter_markers(name))):
        if mark.args:
            raise SpecError(
                f"positional arguments {mark.args!r} are not accepted; use keywords, "
                f"e.g. @pytest.mark.{name}({example})"
            )
        merged.update(mark.kwargs)
    return merged


def marker_spec(item: pytest.Item) -> Spec | None:
    """Merge every ``slo`` marker on the item (module, class, function; nearer wins).

    A bare ``@pytest.mark.slo`` (no keywords anywhere) only tags the test for ``-m slo``.
    """
    merged = _marker_kwargs(item, "slo", "p99_ms=10")
    return Spec.from_kwargs(**merged) if merged else None


def accuracy_spec(item: pytest.Item) -> AccuracySpec | None:
    """Merge every ``accuracy`` marker on the item (nearer wins)."""
    if item.get_closest_marker("accuracy") is None:
        return None
    return AccuracySpec.from_kwargs(**_marker_kwargs(item, "accuracy", "max_drop=0.01"))


def check_benchmark_spec(spec: Spec) -> None:
    """Refuse marker keywords that pytest-benchmark's timings cannot honour (`SpecError`)."""
    for key, why in UNSUPPORTED_WITH_BENCHMARK.items():
        value = getattr(spec, key)
        if value is None or (key == "concurrency" and value == 1):
            continue
        raise SpecError(
            f"{key}={value!r} cannot apply to a test that uses pytest-benchmark's `benchmark` "
            f"fixture: {why}"
        )


def _collection_error(item: pytest.Item, message: str) -> BaseException:
    return pytest.fail.Exception(f"{item.nodeid}: {message}", pytrace=False)


def validate(item: pytest.Item) -> None:
    """Parse the item's markers into its stash, or raise a failure that names the test."""
    fixtures = getattr(item, "fixturenames", ())
    checks: tuple[tuple[str, Callable[[pytest.Item], Any], str, pytest.StashKey[Any]], ...] = (
        ("slo", marker_spec, "latency", SPEC_KEY),
        ("accuracy", accuracy_spec, "accuracy_gate", ACCURACY_KEY),
    )
    for marker, parse, fixture, key in checks:
        try:
            spec = parse(item)
            benchmarked = BENCHMARK_FIXTURE in fixtures and fixture not in fixtures
            if marker == "slo" and spec is not None and benchmarked:
                check_benchmark_spec(spec)  # decided on pytest-benchmark's timings
                fixture = BENCHMARK_FIXTURE
        except SpecError as exc:
            raise _collection_error(item, f"invalid @pytest.mark.{marker}: {exc}") from None
        if spec is None:
            continue
        if fixture not in fixtures:
            alternative = (
                " (or time it with pytest-benchmark's `benchmark` fixture)"
                if marker == "slo"
                else ""
            )
            raise _collection_error(
                item,
                f"marked @pytest.mark.{marker} but does not use the `{fixture}` fixture; "
                f"add it to the test's arguments and call it{alternative}",
            )
        item.stash[key] = spec
        if marker == "slo" and fixture == "latency":
            _warn_if_undecidable(item, spec)


def _warn_if_undecidable(item: pytest.Item, spec: Spec) -> None:
    """A target its own budget cannot decide (p99.9 at 99 % in 5 s at 100 rps): say so now,
    before minutes are spent on a run that can only end INCONCLUSIVE or FAIL."""
    # The planner's statistics load numpy: imported when an slo test is collected, not when
    # the plugin is (pytest --help stays light).
    from ..core.plan import undecidable

    settings = item.config.stash.get(SETTINGS_KEY, None)
    resolved = spec.resolved(settings.spec_defaults() if settings is not None else {})
    for reason in undecidable(resolved):
        item.warn(PytestLatencyWarning(f"{item.nodeid}: cannot be decided as planned: {reason}"))


def needs_validation(item: pytest.Item) -> bool:
    """A marker added after collection (say, by a conftest hook) that is not parsed yet."""
    return bool(
        (item.get_closest_marker("slo") and SPEC_KEY not in item.stash)
        or (item.get_closest_marker("accuracy") and ACCURACY_KEY not in item.stash)
    )
