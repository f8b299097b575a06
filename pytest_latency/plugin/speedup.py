"""``latency.speedup``: a relative SLO decided in one run. The candidate and the reference
take turns in blocks (each block on its own open-loop schedule when the SLO has a rate), so a
drift of the host hits both; the speed-up's confidence bounds decide (`core.compare`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

from ..core.compare import Comparison
from ..core.compare import compare as compare_in_blocks
from ..core.spec import Spec
from ..core.verdict import Decision
from .failures import PytestLatencyWarning


def speedup(
    fixture: Any,  # the LatencyFixture (not imported: it imports this module)
    candidate: Callable[..., Any],
    reference: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    min_speedup: float,
    quantile: float,
    block: int,
    names: tuple[str, str] | None,
    slo: Spec | Mapping[str, Any] | None,
    settle_s: float = 0.0,
    block_warmup: int = 0,
) -> Comparison:
    """Compare `candidate` with `reference` in alternating blocks (``LatencyFixture.speedup``
    documents the arguments), record the comparison, and enforce its decision."""
    plan = fixture.spec_for(slo) if (slo is not None or fixture.marker_spec) else None
    if plan is not None and plan.engine == "locust":
        fixture._fail(
            f"{fixture.nodeid}: speedup times two callables of this process in alternating "
            "blocks; the SLO asks for engine='locust' (requests issued by Locust worker "
            "processes), which a comparison cannot use: mark the comparison test without "
            "engine= and workers="
        )
    loop = fixture._loop_for(reference) or fixture._loop_for(candidate)
    candidate_name, reference_name = names or (
        getattr(candidate, "__qualname__", "candidate"),
        getattr(reference, "__qualname__", "reference"),
    )
    result = compare_in_blocks(
        reference,
        candidate,
        args,
        kwargs,
        quantile=quantile,
        min_speedup=min_speedup,
        spec=plan,
        block=block,
        names=(reference_name, candidate_name),
        loop=loop,
        settle_s=settle_s,
        block_warmup=block_warmup,
    )
    fixture.results.append(result)
    fixture._record(result)
    if result.decision is not Decision.PASS:
        message = result.summary()
        if result.problems[1:]:
            message += "\n" + "\n".join(f"also: {p}" for p in result.problems[1:])
        errors = [s.first_error for s in (result.reference, result.candidate) if s.first_error]
        if errors:
            message += "\n\nfirst error:\n" + errors[0]
        if result.decision is Decision.FAIL:
            fixture._fail(message, latency_missed=not result.problems)
        elif fixture.settings.inconclusive == "fail":
            fixture._fail(message)
        elif fixture.settings.inconclusive == "warn":
            warnings.warn(PytestLatencyWarning(message), stacklevel=3)
    return result
