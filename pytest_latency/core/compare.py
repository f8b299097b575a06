"""Relative SLOs: is the candidate at least `min_speedup` times faster than the baseline at a
percentile, measured in the same run?

    >>> c = compare(baseline_fn, candidate_fn, quantile=0.99, min_speedup=2.0)  # doctest: +SKIP
    >>> c.decision, c.ratio, c.lower                                              # doctest: +SKIP

The variants alternate in *blocks* (default 50 calls), never call by call: a runtime with
spinning thread pools (ONNX Runtime) slows its neighbour when the two interleave per call. The
block order flips every round (AB, BA, AB, ...) so neither variant always runs first.

Decision: the ratio ``baseline_q / candidate_q`` is bounded by combining one-sided
order-statistic bounds of each quantile, each at half the look's error (Bonferroni):
``lower = baseline_lower / candidate_upper`` and ``upper = baseline_upper / candidate_lower``.
PASS when lower >= min_speedup, FAIL when upper < min_speedup, else INCONCLUSIVE; looks at
doubling sample counts spend the error budget as `verdict.look_alpha` does.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .drivers import Call, SerialDriver
from .runner import Clock, _warmup
from .samples import Samples
from .spec import Spec, SpecError
from .stats import min_samples_for_quantile, quantile, quantile_bounds
from .verdict import NS_PER_MS, Decision, look_alpha


@dataclass(frozen=True)
class Comparison:
    baseline_name: str
    candidate_name: str
    baseline: Samples
    candidate: Samples
    quantile: float
    min_speedup: float
    ratio: float | None
    lower: float | None
    upper: float | None
    decision: Decision
    confidence: float
    alpha: float
    looks: int
    block: int
    rounds: int

    @property
    def passed(self) -> bool:
        return self.decision is Decision.PASS

    def quantile_ms(self, which: str) -> float:
        s = self.baseline if which == "baseline" else self.candidate
        return quantile(s.sorted_ns(), self.quantile) / NS_PER_MS

    def summary(self) -> str:
        label = f"p{self.quantile * 100:g}".replace(".", "")
        pct = f"{self.confidence * 100:g}%"
        if self.ratio is None:
            return f"INCONCLUSIVE: no samples for {label} (errors only?)"
        lo = "-" if self.lower is None else f"{self.lower:.2f}x"
        hi = "-" if self.upper is None else f"{self.upper:.2f}x"
        head = {
            Decision.PASS: f"PASS: {self.candidate_name} is at least {self.min_speedup:g}x "
            f"faster than {self.baseline_name} at {label} with {pct} confidence",
            Decision.FAIL: f"FAIL: {self.candidate_name} is less than {self.min_speedup:g}x "
            f"faster than {self.baseline_name} at {label} with {pct} confidence",
            Decision.INCONCLUSIVE: f"INCONCLUSIVE: cannot tell whether {self.candidate_name} "
            f"is {self.min_speedup:g}x faster at {label}",
        }[self.decision]
        return (
            f"{head} (speed-up {self.ratio:.2f}x, bounds [{lo}, {hi}]; {label} "
            f"{self.quantile_ms('baseline'):.3f} ms vs {self.quantile_ms('candidate'):.3f} ms; "
            f"n={self.baseline.n}+{self.candidate.n} in {self.rounds} rounds of "
            f"{self.block}-call blocks)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "comparison",
            "baseline": self.baseline_name,
            "candidate": self.candidate_name,
            "quantile": self.quantile,
            "min_speedup": self.min_speedup,
            "ratio": self.ratio,
            "lower": self.lower,
            "upper": self.upper,
            "decision": self.decision.value,
            "summary": self.summary(),
            "confidence": self.confidence,
            "alpha": self.alpha,
            "looks": self.looks,
            "block": self.block,
            "rounds": self.rounds,
            "baseline_q_ms": self.quantile_ms("baseline") if self.baseline.n else None,
            "candidate_q_ms": self.quantile_ms("candidate") if self.candidate.n else None,
            "n": [self.baseline.n, self.candidate.n],
            "errors": [self.baseline.errors, self.candidate.errors],
        }


def _decide(
    base: np.ndarray[Any, Any],
    cand: np.ndarray[Any, Any],
    q: float,
    alpha: float,
    min_speedup: float,
) -> tuple[float | None, float | None, float | None, Decision]:
    if not len(base) or not len(cand):
        return None, None, None, Decision.INCONCLUSIVE
    b_lo, b_hi = quantile_bounds(base, q, alpha / 2)
    c_lo, c_hi = quantile_bounds(cand, q, alpha / 2)
    ratio = quantile(base, q) / max(1, quantile(cand, q))
    lower = b_lo / c_hi if b_lo is not None and c_hi else None
    upper = b_hi / c_lo if b_hi is not None and c_lo else None
    if lower is not None and lower >= min_speedup:
        return ratio, lower, upper, Decision.PASS
    if upper is not None and upper < min_speedup:
        return ratio, lower, upper, Decision.FAIL
    return ratio, lower, upper, Decision.INCONCLUSIVE


def compare(
    baseline: Callable[..., Any],
    candidate: Callable[..., Any],
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    quantile: float = 0.99,
    min_speedup: float = 2.0,
    spec: Spec | None = None,
    block: int = 50,
    names: tuple[str, str] = ("baseline", "candidate"),
    clock: Clock = time.perf_counter_ns,
) -> Comparison:
    """Measure both callables, alternating blocks, and decide the speed-up at `quantile`.

    `spec` supplies the plan (confidence, warm-up, max_samples per variant, max_time_s for
    the whole comparison, gc); its targets are not used here.
    """
    if not 0 < quantile < 1:
        raise SpecError(f"quantile={quantile!r} is not valid; expected a number in (0, 1)")
    if isinstance(min_speedup, bool) or not min_speedup > 0:
        raise SpecError(f"min_speedup={min_speedup!r} is not valid; expected a number > 0")
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise SpecError(f"block={block!r} is not valid; expected a positive integer")
    spec = (spec or Spec(p99_ms=1e9)).resolved({})
    confidence = spec.confidence or 0.95
    max_samples = spec.max_samples or 200_000
    deadline = clock() + int((spec.max_time_s or 30.0) * 1e9)
    kwargs = kwargs or {}
    drivers = [SerialDriver(Call(fn, args, kwargs, None), clock) for fn in (baseline, candidate)]
    cold = [d.run_block(1, deadline) for d in drivers]
    warm = []
    for d in drivers:  # warm both before timing either
        warm.append(_warmup(d, spec, deadline, clock))

    collected: list[list[int]] = [[], []]
    errors, wall = [0, 0], [0, 0]
    first_error: list[str | None] = [None, None]
    first = max(
        min_samples_for_quantile(quantile, 1 - look_alpha(confidence, 1) / 2),
        spec.min_samples or 100,
    )
    next_look, look, rounds = min(first, max_samples), 0, 0
    gc_off = spec.gc != "on"
    while True:
        while min(len(c) for c in collected) < next_look and clock() < deadline:
            order = (0, 1) if rounds % 2 == 0 else (1, 0)
            for i in order:
                if gc_off:
                    gc.disable()
                try:
                    got = drivers[i].run_block(block, deadline)
                finally:
                    if gc_off:
                        gc.enable()
                collected[i].extend(got.latencies_ns)
                errors[i] += got.errors
                first_error[i] = first_error[i] or got.first_error
                wall[i] += got.wall_ns
            rounds += 1
            if gc_off:
                gc.collect(1)
        look += 1
        alpha = look_alpha(confidence, look)
        arrays = [np.sort(np.asarray(c, dtype=np.int64)) for c in collected]
        ratio, lower, upper, decision = _decide(arrays[0], arrays[1], quantile, alpha, min_speedup)
        if decision is not Decision.INCONCLUSIVE or next_look >= max_samples or clock() >= deadline:
            break
        next_look = min(next_look * 2, max_samples)

    samples = [
        Samples(
            latencies_ns=np.asarray(collected[i], dtype=np.int64),
            errors=errors[i],
            first_error=first_error[i],
            wall_ns=wall[i],
            looks=look,
            warmup=warm[i],
            cold_start_ns=cold[i].latencies_ns[0] if cold[i].latencies_ns else None,
        )
        for i in (0, 1)
    ]
    return Comparison(
        names[0],
        names[1],
        samples[0],
        samples[1],
        quantile,
        min_speedup,
        ratio,
        lower,
        upper,
        decision,
        confidence,
        alpha,
        look,
        block,
        rounds,
    )
