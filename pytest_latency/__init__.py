"""pytest-latency: percentile latency SLOs as pytest tests.

    import pytest

    @pytest.mark.slo(p99_ms=10, p50_ms=4)
    def test_predict_is_fast(latency, model):
        result = latency(model.predict, "a fine film")   # measures, then asserts the SLO
        assert result.verdict.passed

The public API below loads lazily: importing the package costs nothing until a name is used.
"""

from __future__ import annotations

import importlib
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
    from .core.compare import Comparison
    from .core.external import judge
    from .core.importers import perf_analyzer_export
    from .core.spec import AccuracySpec
    from .plugin.failures import LatencyMissed, PytestLatencyWarning, SloFailure
    from .plugin.fixture import LatencyFixture
    from .plugin.gate import AccuracyGate
    from .report.schema import LatencyReport

__version__ = "0.1.0"
__all__ = [
    "AccuracyGate",
    "AccuracySpec",
    "Comparison",
    "Decision",
    "LatencyFixture",
    "LatencyMissed",
    "LatencyReport",
    "PytestLatencyWarning",
    "Result",
    "SloFailure",
    "Spec",
    "SpecError",
    "TargetResult",
    "Verdict",
    "__version__",
    "confidence_interval",
    "evaluate",
    "judge",
    "measure",
    "min_samples_for_quantile",
    "perf_analyzer_export",
    "record_stage",
    "stage",
]


# Names outside `core`: the pytest-facing types (the failures subclass pytest's own, so they
# load pytest -- only when asked for) and the classes a test touches through the fixtures.
_ELSEWHERE = {
    "LatencyMissed": "plugin.failures",
    "SloFailure": "plugin.failures",
    "PytestLatencyWarning": "plugin.failures",
    "LatencyFixture": "plugin.fixture",
    "AccuracyGate": "plugin.gate",
    "Comparison": "core.compare",
    "judge": "core.external",  # verdicts on samples measured elsewhere
    "perf_analyzer_export": "core.importers",
    "AccuracySpec": "core.spec",
    "LatencyReport": "report.schema",  # the typed --latency-json document
}


def __getattr__(name: str) -> Any:
    if name in _ELSEWHERE:
        return getattr(importlib.import_module(f".{_ELSEWHERE[name]}", __name__), name)
    if name in __all__:
        return getattr(_core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
