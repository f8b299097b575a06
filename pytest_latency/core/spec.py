"""What a latency SLO asks for: targets, confidence and the measurement plan.

`Spec` is the validated, frozen form of the keywords of ``@pytest.mark.slo(...)``. It is built
once, at collection time, so a bad keyword fails before anything is measured::

    >>> spec = Spec.from_kwargs(p99_ms=10, p50_ms=4)
    >>> spec.percentile_targets
    ((0.5, 4.0), (0.99, 10.0))

Every validation error is a `SpecError` (a `ValueError`) that names the keyword, the bad value
and what would be valid.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

# Percentile keywords and the quantile each one targets, in increasing order.
PERCENTILE_KEYS: dict[str, float] = {
    "p50_ms": 0.50,
    "p90_ms": 0.90,
    "p95_ms": 0.95,
    "p99_ms": 0.99,
    "p999_ms": 0.999,
}
TARGET_KEYS = (*PERCENTILE_KEYS, "max_ms", "cold_start_ms", "min_rps")

Arrivals = Literal["poisson", "constant"]
Engine = Literal["inprocess", "locust"]
ENGINES = ("inprocess", "locust")
MAX_WORKERS = 256  # Locust worker processes one test may ask for
GcMode = Literal["off", "on"]

DEFAULT_CONFIDENCE = 0.95
DEFAULT_MAX_TIME_S = 30.0
DEFAULT_MAX_SAMPLES = 200_000
MAX_REGRESSION = 10.0  # an allowed slowdown of 1000 % is already no gate at all
# The slowdown against a saved run that counts as a regression. Here, not in core.regression
# (numpy), so that the plugin's option table can read it without loading numpy.
DEFAULT_REGRESSION_THRESHOLD = 0.10

# Ceilings of the plan: beyond them a measurement cannot run in one process, so a marker (or
# option) asking for more is refused when it is read, not after minutes of measuring.
MAX_WARMUP_CALLS = 1_000_000  # a warm-up schedule is built whole, before the first call
MAX_RATE_RPS = 100_000  # one Python process cannot start requests on schedule any faster
MAX_CONCURRENCY = 1_024  # workers are threads (or tasks), one each
MAX_SAMPLES = 10_000_000  # ~80 MB of int64 latencies, kept whole to decide and report
MAX_TIME_S = 86_400  # one day: a measurement is a test, not a soak run


class SpecError(ValueError):
    """A marker keyword or `Spec` field has a value that cannot be measured or decided."""


def _check_known(cls: type, kwargs: Mapping[str, Any]) -> None:
    """Refuse keywords that are not fields of `cls`, listing the valid ones."""
    valid = {f.name for f in fields(cls)}
    unknown = sorted(set(kwargs) - valid)
    if unknown:
        raise SpecError(
            f"unknown keyword{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}; valid: {', '.join(sorted(valid))}"
        )


def _metric_label(key: str) -> str:
    return key.removesuffix("_ms")


@dataclass(frozen=True)
class Spec:
    """A latency SLO and how to measure it.

    Targets (at least one): ``p50_ms .. p999_ms`` (percentiles decided with confidence bounds),
    ``max_ms`` (the sample maximum), ``cold_start_ms`` (the first call), ``min_rps``
    (throughput), ``max_error_rate`` (fraction of calls that may raise; default 0),
    ``goodput`` with ``goodput_ms`` (the share of calls that answer right within
    ``goodput_ms``, decided with a one-sided Clopper-Pearson bound; the calls' answers are
    judged by ``latency(fn, ..., check=...)``).

    Plan: ``confidence`` (0..1, default 0.95), ``warmup`` (a count or ``"auto"``),
    ``budget`` (``{stage: p99_ms}`` for spans recorded with `pytest_latency.stage`),
    ``min_samples`` / ``max_samples`` / ``max_time_s`` (the sampling budget), ``concurrency``
    (closed loop, default 1) or ``rate_rps`` (open loop) with ``arrivals``
    (``"poisson"`` or ``"constant"``), ``gc`` (``"off"`` inside timed blocks, or ``"on"``).
    ``None`` for a plan field means "use the session default" (see `Spec.resolved`).

    Plans one process cannot run are refused: ``warmup`` up to `MAX_WARMUP_CALLS`,
    ``rate_rps`` up to `MAX_RATE_RPS`, ``concurrency`` up to `MAX_CONCURRENCY`, samples up to
    `MAX_SAMPLES`, ``max_time_s`` up to `MAX_TIME_S`; ``seed`` (open-loop arrivals) is >= 0.

    ``engine``: ``"inprocess"`` (the default: the pytest process issues every request) or
    ``"locust"`` (an open loop issued by ``workers`` Locust worker processes, default 1; see
    ``latency.http`` and ``latency.remote``).

    ``regression`` (a share, e.g. ``0.05``) overrides ``--latency-fail-on-regression`` for this
    test when a run is compared with a saved run (``--latency-compare``); it is not a
    target of its own.
    """

    p50_ms: float | None = None
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    max_ms: float | None = None
    cold_start_ms: float | None = None
    min_rps: float | None = None
    max_error_rate: float = 0.0
    goodput: float | None = None
    goodput_ms: float | None = None
    confidence: float | None = None
    warmup: int | Literal["auto"] | None = None
    min_samples: int | None = None
    max_samples: int | None = None
    max_time_s: float | None = None
    concurrency: int | None = None
    rate_rps: float | None = None
    arrivals: Arrivals | None = None
    gc: GcMode | None = None
    budget: Mapping[str, float] | None = None
    regression: float | None = None
    engine: Engine | None = None
    workers: int | None = None
    seed: int | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _validate(self)

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Spec:
        """Build from marker keywords, rejecting unknown ones with the list of valid ones."""
        _check_known(cls, kwargs)
        return cls(**kwargs)

    def merged(self, overrides: Mapping[str, Any] | Spec | None) -> Spec:
        """This spec with the non-default fields of `overrides` replacing its own."""
        if overrides is None:
            return self
        if isinstance(overrides, Spec):
            overrides = overrides.explicit()
        _check_known(Spec, overrides)
        return replace(self, **dict(overrides))

    def explicit(self) -> dict[str, Any]:
        """The fields that differ from their defaults (what a user actually wrote)."""
        default = _DEFAULT_FIELDS
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != default[f.name]
        }

    def resolved(self, defaults: Mapping[str, Any]) -> Spec:
        """Fill every ``None`` plan field from `defaults` (session settings), then built-ins."""
        builtin: dict[str, Any] = {
            "confidence": DEFAULT_CONFIDENCE,
            "warmup": "auto",
            "max_samples": DEFAULT_MAX_SAMPLES,
            "max_time_s": DEFAULT_MAX_TIME_S,
            "gc": "off",
        }
        if self.rate_rps is not None:
            builtin["arrivals"] = "poisson"
        changes: dict[str, Any] = {}
        for name, value in builtin.items():
            if getattr(self, name) is None:
                changes[name] = defaults.get(name) if defaults.get(name) is not None else value
        if self.concurrency is None and self.rate_rps is None and self.engine != "locust":
            changes["concurrency"] = 1
        return replace(self, **changes)

    # -- derived views ------------------------------------------------------------------

    @property
    def percentile_targets(self) -> tuple[tuple[float, float], ...]:
        """``(quantile, target_ms)`` pairs in increasing quantile order."""
        return tuple(
            (q, float(getattr(self, key)))
            for key, q in PERCENTILE_KEYS.items()
            if getattr(self, key) is not None
        )

    @property
    def open_loop(self) -> bool:
        return self.rate_rps is not None

    def describe(self) -> str:
        """Short human form of the targets, e.g. ``p50<=4ms p99<=10ms``."""
        parts = []
        for key in PERCENTILE_KEYS:
            value = getattr(self, key)
            if value is not None:
                parts.append(f"{_metric_label(key)}<={value:g}ms")
        if self.max_ms is not None:
            parts.append(f"max<={self.max_ms:g}ms")
        if self.cold_start_ms is not None:
            parts.append(f"cold_start<={self.cold_start_ms:g}ms")
        if self.min_rps is not None:
            parts.append(f"rps>={self.min_rps:g}")
        if self.goodput is not None:
            parts.append(f"goodput>={self.goodput:.4g}@{self.goodput_ms:g}ms")
        for name, ms in (self.budget or {}).items():
            parts.append(f"{name}.p99<={ms:g}ms")
        return " ".join(parts)


_DEFAULT_FIELDS: dict[str, Any] = {f.name: f.default for f in fields(Spec)}


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive(
    spec: Spec, name: str, *, integer: bool = False, maximum: int | None = None, why: str = ""
) -> None:
    value = getattr(spec, name)
    if value is None:
        return
    kind = "a positive integer" if integer else "a positive number"
    if maximum is not None:
        kind += f" up to {maximum:,}" + (f" ({why})" if why else "")
    ok = isinstance(value, int) and not isinstance(value, bool) if integer else _is_number(value)
    if (
        not ok
        or not math.isfinite(value)
        or value <= 0
        or (maximum is not None and value > maximum)
    ):
        raise SpecError(f"{name}={value!r} is not valid; expected {kind}")


def _validate(spec: Spec) -> None:
    for key in TARGET_KEYS:
        _positive(spec, key)
    for key in ("max_samples", "min_samples"):
        _positive(spec, key, integer=True, maximum=MAX_SAMPLES, why="about 80 MB of latencies")
    _positive(
        spec,
        "concurrency",
        integer=True,
        maximum=MAX_CONCURRENCY,
        why="one thread or task per worker",
    )
    _positive(spec, "max_time_s", maximum=MAX_TIME_S, why="one day, in seconds")
    _positive(
        spec,
        "rate_rps",
        maximum=MAX_RATE_RPS,
        why="requests per second that one process can start; beyond that, drive the load "
        "from several processes or machines with a distributed load generator",
    )

    if spec.budget is not None:
        if not isinstance(spec.budget, Mapping) or not spec.budget:
            raise SpecError(
                f"budget={spec.budget!r} is not valid; expected a non-empty mapping of stage "
                "name to p99 milliseconds, e.g. budget={'inference': 25, 'cache': 5}"
            )
        for name, ms in spec.budget.items():
            if not isinstance(name, str) or not name:
                raise SpecError(f"budget stage {name!r} is not valid; expected a name")
            if not _is_number(ms) or not math.isfinite(ms) or ms <= 0:
                raise SpecError(
                    f"budget[{name!r}]={ms!r} is not valid; expected a positive number of ms"
                )
    _validate_goodput(spec)
    if (
        not any(getattr(spec, key) is not None for key in TARGET_KEYS)
        and spec.goodput is None
        and spec.max_error_rate == 0
        and not spec.budget
    ):
        raise SpecError(
            "no target given; set at least one of "
            + ", ".join((*TARGET_KEYS, "goodput"))
            + " (e.g. @pytest.mark.slo(p99_ms=10))"
        )
    rate = spec.max_error_rate
    if not _is_number(rate) or not 0 <= rate < 1:
        raise SpecError(f"max_error_rate={rate!r} is not valid; expected a number in [0, 1)")
    conf = spec.confidence
    if conf is not None and (not _is_number(conf) or not 0 < conf < 1):
        raise SpecError(
            f"confidence={conf!r} is not valid; expected a number strictly between 0 and 1 "
            "(e.g. 0.95)"
        )
    warm = spec.warmup
    if (
        warm is not None
        and warm != "auto"
        and (
            not isinstance(warm, int) or isinstance(warm, bool) or not 0 <= warm <= MAX_WARMUP_CALLS
        )
    ):
        raise SpecError(
            f"warmup={warm!r} is not valid; expected a count from 0 to {MAX_WARMUP_CALLS:,} "
            "or 'auto'"
        )
    if spec.arrivals is not None and spec.arrivals not in ("poisson", "constant"):
        raise SpecError(
            f"arrivals={spec.arrivals!r} is not valid; expected 'poisson' or 'constant'"
        )
    if spec.gc is not None and spec.gc not in ("off", "on"):
        raise SpecError(f"gc={spec.gc!r} is not valid; expected 'off' or 'on'")
    if spec.rate_rps is not None and spec.concurrency is not None:
        raise SpecError(
            f"rate_rps={spec.rate_rps!r} with concurrency={spec.concurrency!r}: choose one; "
            "rate_rps is an open loop (requests arrive on a schedule), concurrency a closed "
            "loop (N workers each waiting for its reply)"
        )
    if spec.arrivals is not None and spec.rate_rps is None:
        raise SpecError(f"arrivals={spec.arrivals!r} needs rate_rps (it shapes an open loop)")
    if (
        spec.min_samples is not None
        and spec.max_samples is not None
        and spec.min_samples > spec.max_samples
    ):
        raise SpecError(f"min_samples={spec.min_samples} exceeds max_samples={spec.max_samples}")
    reg = spec.regression
    if reg is not None and (not _is_number(reg) or not 0 <= reg <= MAX_REGRESSION):
        raise SpecError(
            f"regression={reg!r} is not valid; expected the slowdown allowed against the "
            f"saved run as a share in [0, {MAX_REGRESSION:g}], e.g. 0.05 for 5 %"
        )
    _validate_engine(spec)
    seed = spec.seed
    # numpy's default_rng refuses a negative seed, and only once the open loop starts.
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise SpecError(f"seed={seed!r} is not valid; expected an integer >= 0")

    # Percentile targets must not decrease with the quantile: p50 <= p90 <= ... <= max.
    ordered = [
        (key, getattr(spec, key))
        for key in (*PERCENTILE_KEYS, "max_ms")
        if getattr(spec, key) is not None
    ]
    for (lo_key, lo), (hi_key, hi) in itertools.pairwise(ordered):
        if lo > hi:
            raise SpecError(
                f"percentiles out of order: {lo_key}={lo:g} > {hi_key}={hi:g}; a higher "
                "percentile can never be lower, so targets must not decrease"
            )


def _validate_goodput(spec: Spec) -> None:
    _positive(spec, "goodput_ms")
    share = spec.goodput
    if share is not None and (not _is_number(share) or not 0 < share < 1):
        raise SpecError(
            f"goodput={share!r} is not valid; expected the share of calls that must answer "
            "right within goodput_ms, strictly between 0 and 1 (e.g. 0.99); 1 could never be "
            "shown with confidence from a finite sample"
        )
    if (share is None) != (spec.goodput_ms is None):
        given, missing = ("goodput", "goodput_ms")
        if share is None:
            given, missing = missing, given
        raise SpecError(
            f"{given}={getattr(spec, given)!r} needs {missing}: a goodput target is the share "
            "of calls that are right within a latency bound, e.g. "
            "@pytest.mark.slo(goodput=0.99, goodput_ms=10)"
        )
    if share is not None and spec.engine == "locust":
        raise SpecError(
            "goodput with engine='locust': answers are judged in this process by "
            "latency(fn, ..., check=...); measure goodput in-process"
        )


def _validate_engine(spec: Spec) -> None:
    if spec.engine is not None and spec.engine not in ENGINES:
        raise SpecError(
            f"engine={spec.engine!r} is not valid; expected one of "
            + ", ".join(repr(e) for e in ENGINES)
        )
    _positive(spec, "workers", integer=True, maximum=MAX_WORKERS, why="Locust processes")
    if spec.workers is not None and spec.engine != "locust":
        raise SpecError(
            f"workers={spec.workers!r} needs engine='locust' (Locust worker processes issue "
            "the load); the in-process engine uses concurrency= or rate_rps= alone"
        )
    if spec.engine == "locust":
        if spec.rate_rps is None:
            raise SpecError(
                "engine='locust' needs rate_rps= (Locust workers run an open loop on one "
                "arrival schedule), e.g. @pytest.mark.slo(p99_ms=20, rate_rps=2000, "
                "engine='locust', workers=4)"
            )
        if spec.concurrency is not None:
            raise SpecError(
                f"engine='locust' with concurrency={spec.concurrency!r}: Locust workers run an "
                "open loop; give rate_rps= instead"
            )
        if spec.cold_start_ms is not None:
            raise SpecError(
                "cold_start_ms with engine='locust': the first request is part of the "
                "workers' open loop, not timed on its own; measure the cold start in-process"
            )


@dataclass(frozen=True)
class AccuracySpec:
    """Keywords of ``@pytest.mark.accuracy(max_drop=0.01, min_agreement=None,
    confidence=0.95)``: the candidate may lose at most `max_drop` accuracy (a share: 0.01 is
    one point) against the reference, and agree with it on at least `min_agreement` labels."""

    max_drop: float = 0.01
    min_agreement: float | None = None
    confidence: float = 0.95

    def __post_init__(self) -> None:
        d = self.max_drop
        if isinstance(d, bool) or not isinstance(d, int | float) or not 0 <= d < 1:
            raise SpecError(
                f"max_drop={d!r} is not valid; expected a share in [0, 1), "
                "e.g. 0.01 for one accuracy point"
            )
        a = self.min_agreement
        if a is not None and (
            isinstance(a, bool) or not isinstance(a, int | float) or not 0 < a <= 1
        ):
            raise SpecError(f"min_agreement={a!r} is not valid; expected a share in (0, 1] or None")
        c = self.confidence
        if isinstance(c, bool) or not isinstance(c, int | float) or not 0 < c < 1:
            raise SpecError(
                f"confidence={c!r} is not valid; expected a number strictly between 0 and 1"
            )

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> AccuracySpec:
        _check_known(cls, kwargs)
        return cls(**kwargs)
