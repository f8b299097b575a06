"""`Result`: what ``latency(fn)`` returns, and its JSON form (schema ``pytest-latency/1``).

Inside a test, ``result = latency(model.predict, "a fine film")``; then
``result.percentile_ms(0.99), result.verdict.decision`` is, say,
``(4.21, <Decision.PASS: 'PASS'>)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Final

import numpy as np

from .samples import CENSORED_UPPER_NS, IntArray, Samples
from .spec import Spec
from .stats import quantile, quantile_bounds
from .verdict import NS_PER_MS, Verdict

SCHEMA: Final = "pytest-latency/1"
REPORTED_QUANTILES = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999}


@dataclass(frozen=True)
class Result:
    """One measurement of one callable: samples, the spec it ran under, and the verdict."""

    name: str
    spec: Spec
    samples: Samples
    verdict: Verdict
    nodeid: str = ""
    named: bool = False  # the name was given by the user (``latency(fn, name=...)``)

    @property
    def samples_ns(self) -> IntArray:
        """Latencies of successful calls, integer nanoseconds, in completion order."""
        return self.samples.latencies_ns

    @property
    def n(self) -> int:
        return self.samples.n

    @property
    def errors(self) -> int:
        return self.samples.errors

    @property
    def first_error(self) -> str | None:
        return self.samples.first_error

    @property
    def throughput_rps(self) -> float | None:
        return self.samples.throughput_rps

    @property
    def cold_start_ms(self) -> float | None:
        c = self.samples.cold_start_ns
        return None if c is None else c / NS_PER_MS

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank ``q`` quantile in ms (e.g. ``result.percentile_ms(0.99)``); an open
        loop's unfinished requests count at their lower bound (``samples.censored_ns``)."""
        if not self.n + self.samples.censored:
            raise ValueError("no successful samples")
        return quantile(self.samples.sorted_ns(), q) / NS_PER_MS

    @property
    def percentiles_ms(self) -> dict[str, float]:
        """p50 .. p999, max and mean, in ms (unfinished requests at their lower bound)."""
        if not self.n + self.samples.censored:
            return {}
        ordered = self.samples.sorted_ns()
        out = {k: quantile(ordered, q) / NS_PER_MS for k, q in REPORTED_QUANTILES.items()}
        out["max"] = int(ordered[-1]) / NS_PER_MS
        out["mean"] = float(ordered.mean()) / NS_PER_MS
        return out

    def bounds_ms(self, q: float) -> tuple[float | None, float | None]:
        """One-sided confidence bounds for the ``q`` quantile at the verdict's error level
        (no upper bound where it would fall on an unfinished request)."""
        lo, hi = quantile_bounds(self.samples.sorted_ns(), q, self.verdict.alpha)
        if self.samples.censored:
            hi = quantile_bounds(self.samples.sorted_upper_ns(), q, self.verdict.alpha)[1]
            hi = None if hi is not None and hi >= CENSORED_UPPER_NS else hi
        return (
            None if lo is None else lo / NS_PER_MS,
            None if hi is None else hi / NS_PER_MS,
        )

    @property
    def stages_ms(self) -> dict[str, dict[str, float]]:
        """Per-stage span statistics (``stage`` / ``record_stage``): n, p50, p99, mean, in ms."""
        out = {}
        for name, spans in self.samples.stages.items():
            if not len(spans):
                continue
            ordered = np.sort(spans)
            out[name] = {
                "n": float(len(ordered)),
                "p50": quantile(ordered, 0.5) / NS_PER_MS,
                "p99": quantile(ordered, 0.99) / NS_PER_MS,
                "mean": float(ordered.mean()) / NS_PER_MS,
            }
        return out

    @property
    def bounds(self) -> dict[str, tuple[float | None, float | None]]:
        """``{metric: (lower_ms, upper_ms)}`` for every percentile target."""
        return {t.metric: (t.lower, t.upper) for t in self.verdict.targets if t.quantile}

    def to_dict(self, *, include_samples: bool = True) -> dict[str, Any]:
        """JSON-ready form; `from_dict`-free by design: the CLI renders these dicts directly."""
        s = self.samples
        pct_bounds = {}
        if self.n + s.censored:
            for key in ("p50", "p99"):
                lo, hi = self.bounds_ms(REPORTED_QUANTILES[key])
                pct_bounds[key] = [lo, hi]
        out: dict[str, Any] = {
            "nodeid": self.nodeid,
            "name": self.name,
            "named": self.named,
            "decision": self.verdict.decision.value,
            "summary": self.verdict.summary(),
            "spec": {f.name: getattr(self.spec, f.name) for f in fields(self.spec)},
            "confidence": self.verdict.confidence,
            "alpha": self.verdict.alpha,
            "looks": self.verdict.look,
            "n": s.n,
            "errors": s.errors,
            "censored": s.censored,
            "wrong": s.wrong,
            "hung": s.hung,
            "first_error": s.first_error,
            "stopped_by": s.stopped_by,
            "cold_start_ms": self.cold_start_ms,
            "throughput_rps": s.throughput_rps,
            "wall_s": s.wall_ns / 1e9,
            "percentiles_ms": self.percentiles_ms,
            "percentile_bounds_ms": pct_bounds,
            "targets": [
                {
                    **{k: v for k, v in asdict(t).items() if k != "decision"},
                    "decision": t.decision.value,
                    "unit": t.unit,
                    "margin": t.margin,
                }
                for t in self.verdict.targets
            ],
            "problems": list(self.verdict.problems),
            "warmup": asdict(s.warmup) if s.warmup else None,
            "load": asdict(s.load),
            "stages_ms": self.stages_ms,
        }
        if include_samples:
            out["samples_ns"] = np.asarray(s.latencies_ns).tolist()
            if s.censored:  # lower bounds of unfinished requests, kept apart from samples
                out["censored_ns"] = np.asarray(s.censored_ns).tolist()
        return out
