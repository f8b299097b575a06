"""pytest-latency: percentile latency SLOs as pytest tests.

    import pytest

    @pytest.mark.slo(p99_ms=10, p50_ms=4)
    def test_predict_is_fast(latency, model):
        result = latency(model.predict, "a fine film")   # measures, then asserts the SLO
        assert result.verdict.passed

The public API below loads lazily: importing the package costs nothing until a name is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import core as _core

if TYPE_CHECKING:
    from .core import (
        Decision,
        Result,
        Spec,
        SpecError,
        TargetResult,
        Verdict,
        confidence_interval,
        evaluate,
        measure,
        min_samples_for_quantile,
        record_stage,
        stage,
    )
    from .failures import LatencyMissed, SloFailure

__version__ = "0.1.0"
__all__ = [
    "Decision",
    "LatencyMissed",
    "Result",
    "SloFailure",
    "Spec",
    "SpecError",
    "TargetResult",
    "Verdict",
    "__version__",
    "confidence_interval",
    "evaluate",
    "measure",
    "min_samples_for_quantile",
    "record_stage",
    "stage",
]


# The failure types subclass pytest's own, so they load pytest: only when asked for.
_FAILURES = frozenset({"LatencyMissed", "SloFailure"})


def __getattr__(name: str) -> Any:
    if name in _FAILURES:
        from . import failures

        return getattr(failures, name)
    if name in __all__:
        return getattr(_core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
