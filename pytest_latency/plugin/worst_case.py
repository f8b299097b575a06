"""``latency.worst_case``: search a strategy's inputs for the slowest ones with Hypothesis, then
measure what it found under the test's SLO.

    @pytest.mark.slo(p99_ms=10, max_time_s=10)
    def test_no_review_is_slow(latency, int8):
        latency.worst_case(int8.predict_one, st.text(max_size=2000), examples=300)

The search (`core.search`) ranks inputs by a de-noised latency and shrinks the first input
that misses to the smallest one that still does; each of the `keep` worst inputs is then
measured like ``latency(fn, value)``: warm-up, sequential sampling, confidence bounds. The test
fails when any of them misses its target, with the input and the search's figures on top.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..core.result import Result
from ..core.runner import is_async_callable, measure
from ..core.search import Candidate, Search, search, short_repr, threshold_ms
from ..core.spec import Spec, SpecError
from ..core.verdict import Decision


@dataclass(frozen=True)
class WorstCase:
    """A search and what it led to: `inputs[i]` was measured as `results[i]` (the shrunk miss,
    if any, first)."""

    search: Search
    inputs: list[Any]
    results: list[Result]


def worst_case(
    fixture: Any,  # the LatencyFixture (not imported: it imports this module)
    fn: Callable[[Any], Any],
    strategy: Any,
    *,
    keep: int,
    slo: Spec | Mapping[str, Any] | None,
    name: str | None,
    **options: Any,
) -> WorstCase:
    """`options`: the search's (`core.search.search`: examples, repeats, max_size, seed)."""
    if not callable(fn):
        raise TypeError(f"worst_case() needs a callable first, got {fn!r}")
    if is_async_callable(fn):
        raise TypeError(
            f"worst_case() times {getattr(fn, '__qualname__', fn)!r} call by call in the "
            "search, and it is async: pass a sync wrapper (e.g. lambda x: asyncio.run(fn(x)))"
        )
    if not hasattr(strategy, "example") or not hasattr(strategy, "map"):
        raise TypeError(
            f"worst_case() needs a Hypothesis strategy second (e.g. st.text(max_size=2000)), "
            f"got {strategy!r}"
        )
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise SpecError(f"keep={keep!r} is not valid; expected a whole number >= 1")
    spec = fixture.spec_for(slo)
    label = name or getattr(fn, "__qualname__", None) or type(fn).__name__
    key = f"{fixture.nodeid}::{label}".encode()
    found = search(
        fn,
        strategy,
        threshold_ms=threshold_ms(spec),
        key=key,
        database="default",
        time_limit_s=spec.max_time_s,  # the search has the measurement's time budget
        **options,
    )
    candidates = found.worst(keep)
    if not candidates:
        raise RuntimeError("the search tried no input")  # Hypothesis always tries one
    results = [
        _measure(fixture, fn, candidate, spec, f"{label} worst case {i}")
        for i, candidate in enumerate(candidates, start=1)
    ]
    for result in results:
        fixture.results.append(result)
        fixture._record(result)
    outcome = WorstCase(found, [c.value for c in candidates], results)
    fixture.searches.append(outcome)
    order = {Decision.FAIL: 0, Decision.INCONCLUSIVE: 1, Decision.PASS: 2}
    worst = min(results, key=lambda r: order[r.verdict.decision])
    fixture._enforce(worst, preamble=describe(found, worst, results))
    return outcome


def _measure(
    fixture: Any,  # the LatencyFixture (not imported: it imports this module)
    fn: Callable[[Any], Any],
    candidate: Candidate,
    spec: Spec,
    label: str,
) -> Result:
    measurement = measure(fn, (candidate.value,), spec=spec, progress=fixture._progress)
    name = f"{label}: {short_repr(candidate.value, 40)}"
    return Result(name, spec, measurement.samples, measurement.verdict, fixture.nodeid, named=True)


def describe(found: Search, worst: Result, results: list[Result]) -> str:
    """The search's figures and the input behind the verdict, above the verdict table."""
    lines = [
        f"worst-case search: {found.examples} input(s) timed (Hypothesis, guided by "
        f"target() on the median of each input's calls); {found.misses} over "
        f"{found.threshold_ms:g} ms, the tightest latency target",
    ]
    if found.shrunk is not None:
        what = "raised" if found.shrunk.error else f"median {found.shrunk.median_ms:.3f} ms"
        lines.append(
            f"smallest input that misses (shrunk): {short_repr(found.shrunk.value, 200)}; "
            f"{what}" + (f" ({found.shrunk.error})" if found.shrunk.error else "")
        )
    elif found.slowest:
        lines.append(
            f"no input missed in the search; slowest: {short_repr(found.slowest[0].value, 200)}"
            f", median {found.slowest[0].median_ms:.3f} ms"
        )
    lines += found.notes
    lines.append(
        f"measured {len(results)} input(s) under the SLO; this one: {worst.name}",
    )
    return "\n".join(lines)
