"""Relative SLOs: is the candidate at least `min_speedup` times faster than the reference at a
percentile, measured in the same run?

    c = compare(reference_fn, candidate_fn, quantile=0.99, min_speedup=2.0)
    c.decision, c.ratio, c.lower

The variants alternate in *blocks* (default 50 calls), never call by call: a runtime with
spinning thread pools (ONNX Runtime) slows its neighbour when the two interleave per call. The
block order flips every round (AB, BA, AB, ...) so neither variant always runs first.

Decision: the ratio ``reference_q / candidate_q`` is bounded by combining one-sided
order-statistic bounds of each quantile, each at half the look's error (Bonferroni):
``lower = reference_lower / candidate_upper`` and ``upper = reference_upper / candidate_lower``.
PASS when lower >= min_speedup, FAIL when upper < min_speedup, else INCONCLUSIVE; looks at
doubling sample counts spend the error budget as `verdict.look_alpha` does.
"""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .drivers import Block, Call, SerialDriver
from .evaluate import MIN_ACHIEVED_SHARE
from .hang import grace_ns
from .openloop import OpenLoopDriver
from .runner import (
    Clock,
    _warmup,
    cold_start,
    is_async_callable,
    run_guarded,
)
from .samples import CENSORED_UPPER_NS, Samples
from .spec import Spec, SpecError
from .stats import min_samples_for_quantile, quantile, quantile_bounds
from .verdict import NS_PER_MS, Decision, look_alpha


@dataclass(frozen=True)
class Comparison:
    reference_name: str
    candidate_name: str
    reference: Samples
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
    max_error_rate: float = 0.0
    problems: tuple[str, ...] = ()
    settle_s: float = 0.0
    block_warmup: int = 0

    @property
    def passed(self) -> bool:
        return self.decision is Decision.PASS

    @property
    def baseline(self) -> Samples:
        """Deprecated name of `reference` (the side the candidate is measured against)."""
        warnings.warn(
            "Comparison.baseline is deprecated; use Comparison.reference", DeprecationWarning, 2
        )
        return self.reference

    @property
    def baseline_name(self) -> str:
        """Deprecated name of `reference_name`."""
        warnings.warn(
            "Comparison.baseline_name is deprecated; use Comparison.reference_name",
            DeprecationWarning,
            2,
        )
        return self.reference_name

    def quantile_ms(self, which: str) -> float:
        """The `quantile` of one side: ``"reference"`` (or the deprecated ``"baseline"``) or
        ``"candidate"``."""
        s = self.reference if which in ("reference", "baseline") else self.candidate
        return quantile(s.sorted_ns(), self.quantile) / NS_PER_MS

    def summary(self) -> str:
        label = f"p{self.quantile * 100:g}".replace(".", "")
        pct = f"{self.confidence * 100:g}%"
        if self.problems:
            return f"FAIL: {self.problems[0]}"
        if self.ratio is None:
            return f"INCONCLUSIVE: no samples for {label} (errors only?)"
        lo = "-" if self.lower is None else f"{self.lower:.2f}x"
        hi = "-" if self.upper is None else f"{self.upper:.2f}x"
        head = {
            Decision.PASS: f"PASS: {self.candidate_name} is at least {self.min_speedup:g}x "
            f"faster than {self.reference_name} at {label} with {pct} confidence",
            Decision.FAIL: f"FAIL: {self.candidate_name} is less than {self.min_speedup:g}x "
            f"faster than {self.reference_name} at {label} with {pct} confidence",
            Decision.INCONCLUSIVE: f"INCONCLUSIVE: cannot tell whether {self.candidate_name} "
            f"is {self.min_speedup:g}x faster at {label}",
        }[self.decision]
        return (
            f"{head} (speed-up {self.ratio:.2f}x, bounds [{lo}, {hi}]; {label} "
            f"{self.quantile_ms('reference'):.3f} ms vs {self.quantile_ms('candidate'):.3f} ms; "
            f"n={self.reference.n}+{self.candidate.n} in {self.rounds} rounds of "
            f"{self.block}-call blocks"
            + (f", {self.settle_s:g} s unmeasured pause before each" if self.settle_s else "")
            + (
                f", each block's first {self.block_warmup} calls unmeasured"
                if self.block_warmup
                else ""
            )
            + ")"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "comparison",
            # The JSON keeps the field names of schema pytest-latency/1: "baseline" is the
            # reference side.
            "baseline": self.reference_name,
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
            "settle_s": self.settle_s,
            "block_warmup": self.block_warmup,
            "baseline_q_ms": self.quantile_ms("reference") if self.reference.n else None,
            "candidate_q_ms": self.quantile_ms("candidate") if self.candidate.n else None,
            "n": [self.reference.n, self.candidate.n],
            "errors": [self.reference.errors, self.candidate.errors],
            "max_error_rate": self.max_error_rate,
            "problems": list(self.problems),
        }


def _decide(
    base: np.ndarray[Any, Any],
    cand: np.ndarray[Any, Any],
    q: float,
    alpha: float,
    min_speedup: float,
    censored: tuple[list[int], list[int]] = ([], []),
) -> tuple[float | None, float | None, float | None, Decision]:
    """`censored` (open loop): each side's unfinished requests, by how long they had waited.
    They enter each bound on the side that can only move the decision away from PASS and
    FAIL alike: at their waited time where that is conservative, at +inf where it is not."""
    if not len(base) or not len(cand):
        return None, None, None, Decision.INCONCLUSIVE

    def with_censored(a: np.ndarray[Any, Any], extra: list[int], upper: bool) -> Any:
        if not extra:
            return a
        add = [CENSORED_UPPER_NS] * len(extra) if upper else extra
        return np.sort(np.concatenate([a, np.asarray(add, dtype=np.int64)]))

    # lower ratio = reference's lower bound / candidate's upper bound: censored reference
    # requests at their waited time (they may be longer: conservative), censored candidate
    # ones at +inf. The upper ratio the other way round.
    b_lo, _ = quantile_bounds(with_censored(base, censored[0], False), q, alpha / 2)
    _, b_hi = quantile_bounds(with_censored(base, censored[0], True), q, alpha / 2)
    c_lo, _ = quantile_bounds(with_censored(cand, censored[1], False), q, alpha / 2)
    _, c_hi = quantile_bounds(with_censored(cand, censored[1], True), q, alpha / 2)
    if b_hi == CENSORED_UPPER_NS:
        b_hi = None
    if c_hi == CENSORED_UPPER_NS:
        c_hi = None
    ratio = quantile(base, q) / max(1, quantile(cand, q))
    lower = b_lo / c_hi if b_lo is not None and c_hi else None
    upper = b_hi / c_lo if b_hi is not None and c_lo else None
    if lower is not None and lower >= min_speedup:
        return ratio, lower, upper, Decision.PASS
    if upper is not None and upper < min_speedup:
        return ratio, lower, upper, Decision.FAIL
    return ratio, lower, upper, Decision.INCONCLUSIVE


def compare(
    reference: Callable[..., Any],
    candidate: Callable[..., Any],
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    quantile: float = 0.99,
    min_speedup: float = 2.0,
    spec: Spec | None = None,
    block: int = 50,
    names: tuple[str, str] = ("reference", "candidate"),
    clock: Clock = time.perf_counter_ns,
    loop: asyncio.AbstractEventLoop | None = None,
    settle_s: float = 0.0,
    block_warmup: int = 0,
) -> Comparison:
    """Measure both callables, alternating blocks, and decide the speed-up at `quantile`.

    `spec` supplies the plan (confidence, warm-up, max_samples per variant, max_time_s for
    the whole comparison, gc, max_error_rate); its latency targets are not used here. Async
    callables are awaited on `loop` (one is made for the call when none is given). Either
    side raising on more than ``max_error_rate`` of its calls, or a call that hangs, is a
    FAIL whatever the speed-up: a candidate that fails on its slow inputs is not faster.

    `settle_s` is an unmeasured pause before every block after the first: a side that keeps
    working after its last call (a server's keep-warm loop, a background flush, a cooling
    cache) stops before the other side's block starts, instead of stealing its CPU -- a bias
    in whichever side leaves the work behind. The pause counts against ``max_time_s``.

    `block_warmup` calls open every block (after the pause) and are not timed: each side
    comes back to its block after the other side's, cold in ways steady traffic never is
    (caches, connection state, a keep-warm loop that stopped), and those first calls would
    otherwise weigh on a tail quantile as a per-block artefact. Their errors and hung calls
    still count.
    """
    if not 0 < quantile < 1:
        raise SpecError(f"quantile={quantile!r} is not valid; expected a number in (0, 1)")
    if isinstance(min_speedup, bool) or not min_speedup > 0:
        raise SpecError(f"min_speedup={min_speedup!r} is not valid; expected a number > 0")
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise SpecError(f"block={block!r} is not valid; expected a positive integer")
    if (
        isinstance(settle_s, bool)
        or not isinstance(settle_s, (int, float))
        or not 0 <= settle_s <= 60
    ):
        raise SpecError(
            f"settle_s={settle_s!r} is not valid; expected a pause in seconds from 0 to 60"
        )
    if (
        isinstance(block_warmup, bool)
        or not isinstance(block_warmup, int)
        or not 0 <= block_warmup <= 10_000
    ):
        raise SpecError(
            f"block_warmup={block_warmup!r} is not valid; expected a whole number of calls "
            "from 0 to 10000"
        )
    spec = (spec or Spec(p99_ms=1e9)).resolved({})
    confidence = spec.confidence or 0.95
    max_samples = spec.max_samples or 200_000
    deadline = clock() + int((spec.max_time_s or 30.0) * 1e9)
    kwargs = kwargs or {}
    own_loop = None
    if loop is None and (is_async_callable(reference) or is_async_callable(candidate)):
        loop = own_loop = asyncio.new_event_loop()
    try:
        return _compare(
            reference,
            candidate,
            args,
            kwargs,
            quantile,
            min_speedup,
            spec,
            block,
            names,
            clock,
            loop,
            deadline,
            confidence,
            max_samples,
            float(settle_s),
            block_warmup,
        )
    finally:
        if own_loop is not None:
            own_loop.close()


def _compare(
    reference: Callable[..., Any],
    candidate: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    quantile: float,
    min_speedup: float,
    spec: Spec,
    block: int,
    names: tuple[str, str],
    clock: Clock,
    loop: asyncio.AbstractEventLoop | None,
    deadline: int,
    confidence: float,
    max_samples: int,
    settle_s: float = 0.0,
    block_warmup: int = 0,
) -> Comparison:
    hard = deadline + grace_ns(spec)
    drivers = []
    for fn in (reference, candidate):
        driver = SerialDriver(
            Call(fn, args, kwargs, loop if is_async_callable(fn) else None), clock
        )
        driver.hard_ns = hard
        drivers.append(driver)
    cold = [cold_start(d.call, clock, deadline, hard) for d in drivers]
    hung = [c.hung for c in cold]
    warm = []
    for i, d in enumerate(drivers):  # warm both before timing either
        warm.append(_warmup(d, spec, deadline, clock) if not any(hung) else None)
        hung[i] += warm[-1].hung if warm[-1] else 0

    collected: list[list[int]] = [[], []]
    censored: tuple[list[int], list[int]] = ([], [])  # open loop: unfinished, waited ns
    not_issued = [0, 0]
    # Open loop, per side: intended and actual first-to-last start of its blocks, summed.
    spans = [[0, 0], [0, 0]]
    errors, wall = [cold[0].errors, cold[1].errors], [0, 0]
    first_error: list[str | None] = [cold[0].first_error, cold[1].first_error]
    first = max(
        min_samples_for_quantile(quantile, 1 - look_alpha(confidence, 1) / 2),
        spec.min_samples or 100,
    )
    next_look, look, rounds = min(first, max_samples), 0, 0
    gc_off = spec.gc != "on"
    while True:
        while (
            min(len(c) + len(u) + e for c, u, e in zip(collected, censored, errors, strict=True))
            < next_look
            and clock() < deadline
            and not any(hung)
            and not (spec.max_error_rate == 0 and any(errors))
        ):
            order = (0, 1) if rounds % 2 == 0 else (1, 0)
            for i in order:
                if settle_s and (rounds or i != order[0]):
                    pause_ns = min(int(settle_s * 1e9), deadline - clock())
                    if pause_ns <= 0:
                        break
                    time.sleep(pause_ns / 1e9)
                if block_warmup:
                    if spec.rate_rps:
                        warm_block = _open_loop_block(
                            drivers[i].call,
                            spec,
                            block_warmup,
                            _WARM_SEED_OFFSET + 2 * rounds + i,
                            deadline,
                            hard,
                            clock,
                        )
                    else:
                        warm_block = run_guarded(drivers[i], block_warmup, deadline)
                    errors[i] += warm_block.errors
                    first_error[i] = first_error[i] or warm_block.first_error
                    hung[i] += warm_block.hung
                if gc_off:
                    gc.disable()
                try:
                    if spec.rate_rps:
                        got = _open_loop_block(
                            drivers[i].call, spec, block, 2 * rounds + i, deadline, hard, clock
                        )
                        censored[i].extend(got.censored.values())
                        not_issued[i] += got.not_issued
                        spans[i][0] += got.scheduled_span_ns
                        spans[i][1] += got.actual_span_ns
                    else:
                        got = run_guarded(drivers[i], block, deadline)
                finally:
                    if gc_off:
                        gc.enable()
                collected[i].extend(got.latencies_ns)
                errors[i] += got.errors
                first_error[i] = first_error[i] or got.first_error
                wall[i] += got.wall_ns
                hung[i] += got.hung
            rounds += 1
            if gc_off:
                gc.collect(1)
        look += 1
        alpha = look_alpha(confidence, look)
        arrays = [np.sort(np.asarray(c, dtype=np.int64)) for c in collected]
        ratio, lower, upper, decision = _decide(
            arrays[0], arrays[1], quantile, alpha, min_speedup, censored
        )
        problems = _problems(names, collected, errors, hung, spec, spans)
        if problems:
            decision = Decision.FAIL
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
            hung=hung[i],
            call_name=drivers[i].call.name,
            censored_ns=np.asarray(censored[i], dtype=np.int64),
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
        spec.max_error_rate,
        problems,
        settle_s,
        block_warmup,
    )


_DRAIN_NS = 1_000_000_000
_WARM_SEED_OFFSET = 1_000_003  # the untimed opening of a block gets a schedule of its own


def _open_loop_block(
    call: Call, spec: Spec, count: int, index: int, deadline: int, hard: int, clock: Clock
) -> Block:
    """`count` requests of one side on an open-loop schedule of their own (``spec.rate_rps``),
    each timed from its intended start; the side's block ends when they have all finished or
    exceeded every target (censored), so the other side's block starts on an idle server."""
    driver = OpenLoopDriver(
        call,
        float(spec.rate_rps or 0),
        spec.arrivals or "poisson",
        None if spec.seed is None else spec.seed + index,  # reproducible, new per block
        clock,
        # Targets do not decide a comparison, so a block waits up to 1 s for a request; one
        # still running then counts as censored at what it had waited (see _decide).
        drain_ns=_DRAIN_NS,
    )
    driver.horizon_ns, driver.hard_ns, driver.limit = deadline, hard, count
    try:
        got = run_guarded(driver, count, deadline)
        late = driver.finish(max(0, min(grace_ns(spec), hard - clock())))
        if late is not None:
            got.add_hung(late.hung, late.hung_waited_ns)
    finally:
        driver.close()
    return got


def _problems(
    names: tuple[str, str],
    collected: list[list[int]],
    errors: list[int],
    hung: list[int],
    spec: Spec,
    spans: list[list[int]] | None = None,
) -> tuple[str, ...]:
    """Failures that decide the comparison whatever the speed-up says. `spans` (open loop):
    each side's intended and actual first-to-last start, summed over its blocks."""
    out = []
    for i in (0, 1):
        scheduled, actual = spans[i] if spans else (0, 0)
        if spec.rate_rps and actual > 0:
            achieved = spec.rate_rps * scheduled / actual
            if achieved < MIN_ACHIEVED_SHARE * spec.rate_rps:
                # Late starts count in that side's latencies (timed from the intended start):
                # a generator behind on the reference side would inflate the speed-up.
                out.append(
                    f"{names[i]}: the load generator fell behind: offered {spec.rate_rps:g} "
                    f"rps, started {achieved:.1f} rps; its latencies include the generator's "
                    "own delay, so the ratio would not be the systems'. Lower rate_rps, make "
                    "the callable cheaper to issue (async), or run on an idle machine"
                )
        if hung[i]:
            out.append(
                f"{names[i]}: {hung[i]} call(s) did not return within max_time_s "
                f"{spec.max_time_s:g} s plus a grace of {grace_ns(spec) / 1e9:g} s"
            )
        total = len(collected[i]) + errors[i]
        rate = errors[i] / total if total else 0.0
        if errors[i] and rate > spec.max_error_rate:
            out.append(
                f"{names[i]} raised on {errors[i]} of {total} calls (error rate {rate:.1%}, "
                f"allowed {spec.max_error_rate:.1%}): a side that fails cannot be compared "
                "on the calls that succeeded; the first traceback is below"
            )
    return tuple(out)
