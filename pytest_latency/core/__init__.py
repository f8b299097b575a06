"""Measurement and statistics for latency SLOs. Pure Python + numpy; never imports pytest.

Names are loaded on first use (PEP 562), so importing the plugin to validate markers or
print ``pytest --help`` does not pay for numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .evaluate import evaluate
    from .result import Result
    from .runner import Measurement, Progress, first_look_samples, measure
    from .samples import LoadStats, Samples, WarmupStats
    from .spec import Spec, SpecError
    from .stages import record_stage, stage
    from .stats import (
        confidence_interval,
        min_samples_for_quantile,
        quantile,
        quantile_bounds,
        samples_to_decide,
    )
    from .verdict import Decision, TargetResult, Verdict, look_alpha

_WHERE = {
    "Result": "result",
    "Measurement": "runner",
    "Progress": "runner",
    "first_look_samples": "runner",
    "measure": "runner",
    "LoadStats": "samples",
    "Samples": "samples",
    "WarmupStats": "samples",
    "Spec": "spec",
    "SpecError": "spec",
    "confidence_interval": "stats",
    "min_samples_for_quantile": "stats",
    "quantile": "stats",
    "quantile_bounds": "stats",
    "samples_to_decide": "stats",
    "Decision": "verdict",
    "TargetResult": "verdict",
    "Verdict": "verdict",
    "evaluate": "evaluate",
    "look_alpha": "verdict",
    "stage": "stages",
    "record_stage": "stages",
}

__all__ = [
    "Decision",
    "LoadStats",
    "Measurement",
    "Progress",
    "Result",
    "Samples",
    "Spec",
    "SpecError",
    "TargetResult",
    "Verdict",
    "WarmupStats",
    "confidence_interval",
    "evaluate",
    "first_look_samples",
    "look_alpha",
    "measure",
    "min_samples_for_quantile",
    "quantile",
    "quantile_bounds",
    "record_stage",
    "samples_to_decide",
    "stage",
]
assert sorted(__all__) == sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
