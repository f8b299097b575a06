"""Measurement and statistics for latency SLOs. Pure Python + numpy; never imports pytest."""

from __future__ import annotations

from .runner import Measurement, Progress, first_look_samples, measure
from .samples import LoadStats, Samples, WarmupStats
from .spec import Spec, SpecError
from .stats import (
    confidence_interval,
    min_samples_for_quantile,
    quantile,
    quantile_bounds,
    samples_to_decide,
)
from .verdict import Decision, TargetResult, Verdict, evaluate, look_alpha

__all__ = [
    "Decision",
    "LoadStats",
    "Measurement",
    "Progress",
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
    "samples_to_decide",
]
