"""Verdicts on latencies measured elsewhere: a browser's ``performance.now()``, a device, a load
tool's per-request log, a production trace.

    >>> from pytest_latency.core.external import judge
    >>> judge([2.0] * 400, {"p99_ms": 10}).verdict.decision.value
    'PASS'

The samples get the same statistics as the plugin's own: order-statistic bounds at the spec's
confidence, at one look (the sample is fixed: the whole ``1 - confidence`` is spent on it), errors
against ``max_error_rate``, unfinished requests (`unfinished_ms`, the time each had waited)
counted at their lower bound for lower bounds and as unknown-but-larger for upper bounds, so
they can only push a verdict towards FAIL. What the plugin cannot know about a measurement it
did not run is refused rather than guessed: a ``cold_start_ms`` target without the first
call's latency (`cold_start_ms`, timed apart from `latencies_ms`: which call was the first?),
and ``min_rps`` without the wall time the requests took (`wall_s`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .evaluate import evaluate
from .runner import Measurement
from .samples import LoadStats, Samples
from .spec import Spec, SpecError

__all__ = ["judge"]


def _as_ms_array(values: Any, what: str) -> np.ndarray[Any, Any]:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{what} must be numbers of milliseconds: {exc}") from None
    if array.ndim != 1:
        raise SpecError(f"{what} must be a flat sequence of milliseconds, got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array) | (array < 0))
    if len(bad):
        i = int(bad[0])
        raise SpecError(
            f"{what}[{i}] = {float(array[i])!r} is not a latency; expected a finite number of "
            f"milliseconds >= 0 ({len(bad)} such value(s))"
        )
    return array


def judge(
    latencies_ms: Sequence[float] | np.ndarray[Any, Any],
    spec: Spec | Mapping[str, Any],
    *,
    errors: int = 0,
    unfinished_ms: Sequence[float] | np.ndarray[Any, Any] = (),
    wall_s: float | None = None,
    cold_start_ms: float | None = None,
    source: str = "external",
    right: Sequence[bool] | np.ndarray[Any, Any] | None = None,
) -> Measurement:
    """Decide `spec` on `latencies_ms` (successful requests), `errors` (failed ones) and
    `unfinished_ms` (requests that never answered, each at the time it had waited);
    `cold_start_ms` is the first call's latency, timed apart (reported, and decided against
    a ``cold_start_ms`` target; not one of `latencies_ms`). `right` (one flag per latency:
    was the answer right?) is what a goodput target needs."""
    if not isinstance(spec, Spec):
        spec = Spec.from_kwargs(**dict(spec))
    if spec.cold_start_ms is not None and cold_start_ms is None:
        raise SpecError(
            "cold_start_ms cannot be judged on samples measured elsewhere (which one was the "
            "first call?); pass the first call's latency, timed apart, as cold_start_ms="
        )
    if spec.min_rps is not None and wall_s is None:
        raise SpecError(
            "min_rps needs wall_s: the seconds the requests took, from the first start to the "
            "last end"
        )
    if wall_s is not None and (
        isinstance(wall_s, bool)
        or not isinstance(wall_s, int | float)
        or not (math.isfinite(wall_s) and wall_s > 0)
    ):
        raise SpecError(f"wall_s={wall_s!r} is not valid; expected seconds > 0")
    if isinstance(errors, bool) or not isinstance(errors, int) or errors < 0:
        raise SpecError(f"errors={errors!r} is not valid; expected a whole number >= 0")
    cold = None if cold_start_ms is None else _as_ms_array([cold_start_ms], "cold_start_ms")
    latencies = _as_ms_array(latencies_ms, "latencies_ms")
    unfinished = _as_ms_array(unfinished_ms, "unfinished_ms")
    if not len(latencies) and not errors and not len(unfinished):
        raise SpecError("no samples to judge: latencies_ms is empty, with no errors or unfinished")
    wrong = _wrong_latencies(latencies, right, spec)
    spec = spec.resolved({})
    samples = Samples(
        latencies_ns=np.rint(latencies * 1e6).astype(np.int64),
        errors=errors,
        first_error=f"{errors} request(s) failed (reported by {source})" if errors else None,
        wall_ns=math.ceil(wall_s * 1e9) if wall_s is not None else 0,
        looks=1,
        stopped_by="external",
        load=LoadStats(mode="external", issued=len(latencies) + errors + len(unfinished)),
        censored_ns=np.rint(unfinished * 1e6).astype(np.int64),
        call_name=source,
        wrong_ns=np.rint(wrong * 1e6).astype(np.int64),
        cold_start_ns=None if cold is None else int(np.rint(cold[0] * 1e6)),
    )
    return Measurement(samples, evaluate(samples, spec, look=1, fixed=True))


def _wrong_latencies(
    latencies: np.ndarray[Any, Any], right: Any, spec: Spec
) -> np.ndarray[Any, Any]:
    """The latencies of the answers flagged wrong in `right`."""
    if right is None:
        if spec.goodput is not None:
            raise SpecError(
                "goodput needs right=: one flag per latency saying whether that answer was "
                "right (a goodput target counts only right answers within goodput_ms)"
            )
        return latencies[:0]
    flags = np.asarray(right)
    if flags.shape != latencies.shape or flags.dtype != np.bool_:
        raise SpecError(
            f"right must be one bool per latency ({len(latencies)}), got "
            f"{flags.dtype} of shape {flags.shape}"
        )
    return latencies[~flags]
