"""Regression checks against a saved run: is a percentile slower than the saved run's?

    change = compare_quantile(old_sorted, new_sorted, 0.99, threshold=0.10, alpha=0.05)
    change.classification, change.ratio, change.lower, change.upper
    # ('regression', 1.31, 1.17, 1.46)

The change is the ratio ``r = new_q / old_q`` of the ``q`` quantiles of the two runs. Its
bounds combine one-sided, distribution-free order-statistic bounds of each quantile
(`stats.quantile_bounds`), each at half the error (Bonferroni)::

    lower = new_lower / old_upper        upper = new_upper / old_lower

so ``P(lower > r) <= alpha`` and ``P(upper < r) <= alpha``: each end holds at ``1 - alpha``.
With a threshold ``t`` (0.10 = 10 %) the band of "no change" is ``[1 / (1 + t), 1 + t]``
(symmetric on a log scale: 10 % slower or 10 % faster) and:

* ``regression``   when ``lower > 1 + t``;
* ``improvement``  when ``upper < 1 / (1 + t)``;
* ``no change``    when ``1 / (1 + t) <= lower`` and ``upper <= 1 + t``;
* ``inconclusive`` otherwise (the interval straddles an edge of the band).

Each wrong call needs one end of the interval on the wrong side of the truth, so a wrong
``regression`` (truth ``r <= 1 + t``) happens with probability at most ``alpha``. A result
compares every percentile it targets (p50 and p99 when it targets none) and the error is split
evenly among them, so a test is wrongly called a regression at most ``alpha`` of the time.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from .spec import DEFAULT_REGRESSION_THRESHOLD, PERCENTILE_KEYS
from .stats import quantile, quantile_bounds

REGRESSION = "regression"
IMPROVEMENT = "improvement"
NO_CHANGE = "no change"
INCONCLUSIVE = "inconclusive"
NEW = "new"  # no counterpart in the saved run: reported, never failed
# How a result's overall classification is chosen from its percentiles' (worst first).
SEVERITY = (REGRESSION, INCONCLUSIVE, IMPROVEMENT, NO_CHANGE, NEW)
DEFAULT_THRESHOLD = DEFAULT_REGRESSION_THRESHOLD
DEFAULT_QUANTILES = (("p50", 0.5), ("p99", 0.99))
NS_PER_MS = 1_000_000

# Environment fields that make two runs' latencies incomparable when they differ.
ENV_FIELDS = ("cpu_model", "cpu_count", "cpu_affinity", "governor", "python", "implementation")
# Test tooling, not the code under test: a new pytest does not move a model's latency.
ENV_IGNORED_PACKAGES = frozenset({"pytest", "pytest-xdist"})


def parse_threshold(raw: object) -> float:
    """``"10%"`` -> ``0.10``. Only a percentage with a ``%`` sign is accepted: a bare ``0.1``
    could mean a tenth of a percent or ten percent, and a gate must not guess."""
    text = str(raw).strip()
    valid = "a percentage with a % sign between 0% and 1000%, e.g. 10%"
    if not text.endswith("%"):
        raise ValueError(f"{raw!r} is not a valid threshold; expected {valid}")
    try:
        value = float(text[:-1])
    except ValueError:
        raise ValueError(f"{raw!r} is not a valid threshold; expected {valid}") from None
    if not math.isfinite(value) or not 0 <= value <= 1000:
        raise ValueError(f"{raw!r} is not a valid threshold; expected {valid}")
    return value / 100


def classify(lower: float | None, upper: float | None, threshold: float) -> str:
    """The rule in the module docstring; ``None`` bounds mean 0 (lower) and infinity (upper)."""
    lo = 0.0 if lower is None else lower
    hi = math.inf if upper is None else upper
    if lo > 1 + threshold:
        return REGRESSION
    if hi < 1 / (1 + threshold):
        return IMPROVEMENT
    if lo >= 1 / (1 + threshold) and hi <= 1 + threshold:
        return NO_CHANGE
    return INCONCLUSIVE


@dataclass(frozen=True)
class Change:
    """One percentile of one result, before (the saved run) and after (this run)."""

    metric: str  # "p99"
    quantile: float
    before_ms: float | None
    after_ms: float | None
    ratio: float | None  # after / before, the point estimate
    lower: float | None  # one-sided bounds of the ratio, each at 1 - alpha
    upper: float | None
    threshold: float
    alpha: float
    n_before: int
    n_after: int
    classification: str


def compare_quantile(
    old_sorted: np.ndarray[Any, Any],
    new_sorted: np.ndarray[Any, Any],
    q: float,
    *,
    threshold: float,
    alpha: float,
    metric: str | None = None,
) -> Change:
    """Classify the change of the ``q`` quantile between two sorted sample arrays (ns)."""
    label = metric or f"p{q * 100:g}".replace(".", "")
    n_old, n_new = len(old_sorted), len(new_sorted)
    if not n_old or not n_new:
        return Change(
            label, q, None, None, None, None, None, threshold, alpha, n_old, n_new, INCONCLUSIVE
        )
    old_lo, old_hi = quantile_bounds(old_sorted, q, alpha / 2)
    new_lo, new_hi = quantile_bounds(new_sorted, q, alpha / 2)
    before, after = quantile(old_sorted, q), quantile(new_sorted, q)
    ratio = after / max(1, before)
    lower = new_lo / old_hi if new_lo is not None and old_hi else None
    upper = new_hi / max(1, old_lo) if new_hi is not None and old_lo is not None else None
    return Change(
        label,
        q,
        before / NS_PER_MS,
        after / NS_PER_MS,
        ratio,
        lower,
        upper,
        threshold,
        alpha,
        n_old,
        n_new,
        classify(lower, upper, threshold),
    )


def quantiles_for(spec: Mapping[str, Any] | None) -> tuple[tuple[str, float], ...]:
    """The percentiles a result targets (``p99_ms=`` -> ``("p99", 0.99)``), else p50 and p99."""
    spec = spec or {}
    targeted = tuple(
        (key.removesuffix("_ms"), q)
        for key, q in PERCENTILE_KEYS.items()
        if spec.get(key) is not None
    )
    return targeted or DEFAULT_QUANTILES


def _sorted_samples(result: Mapping[str, Any]) -> np.ndarray[Any, Any]:
    return np.sort(np.asarray(result.get("samples_ns") or [], dtype=np.int64))


def threshold_for(result: Mapping[str, Any], default: float) -> float:
    """The test's own ``regression=`` marker keyword wins over the session threshold."""
    own = (result.get("spec") or {}).get("regression")
    return float(own) if own is not None else default


@dataclass(frozen=True)
class ResultChange:
    """One result of this run against its counterpart in the saved run (or ``new``)."""

    nodeid: str
    name: str
    named: bool
    threshold: float
    confidence: float
    changes: tuple[Change, ...] = ()
    new: bool = False
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.nodeid} ({self.name})" if self.named else self.nodeid

    @property
    def classification(self) -> str:
        if self.new:
            return NEW
        found = {c.classification for c in self.changes} or {INCONCLUSIVE}
        return next(c for c in SEVERITY if c in found)

    @property
    def regressed(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.classification == REGRESSION)

    def summary(self) -> str:
        """One sentence: the classification and why."""
        pct = f"{round(self.confidence * 100, 2):g}%"
        band = f"{self.threshold:.0%}"
        if self.new:
            return f"NEW: {self.label} has no counterpart in the saved run; nothing to compare"
        if self.note:
            return f"INCONCLUSIVE: {self.note}"
        shown = [c for c in self.changes if c.classification == self.classification]
        c = (shown or list(self.changes))[0]
        bounds = f"bounds [{_x(c.lower)}, {_x(c.upper)}]"
        detail = (
            f"ratio {_x(c.ratio)}, {bounds}; {c.metric} {_ms(c.before_ms)} -> "
            f"{_ms(c.after_ms)}; n={c.n_before} vs {c.n_after}"
        )
        if self.classification == REGRESSION:
            return (
                f"REGRESSION: {c.metric} is slower than the saved run by more than {band} "
                f"with {pct} confidence ({detail})"
            )
        return f"{self.classification.upper()}: against the saved run, +/-{band} ({detail})"

    def to_dict(self) -> dict[str, Any]:
        return judged_dict(self, [asdict(c) for c in self.changes])


class Judged(Protocol):
    """What a per-test comparison shows (`ResultChange`, `core.ab.ABResult`)."""

    @property
    def nodeid(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def threshold(self) -> float: ...

    @property
    def confidence(self) -> float: ...

    @property
    def note(self) -> str: ...

    @property
    def label(self) -> str: ...

    @property
    def classification(self) -> str: ...

    def summary(self) -> str: ...


def judged_dict(judged: Judged, changes: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON form of a per-test comparison; `changes` are its percentiles' dicts."""
    return {
        "nodeid": judged.nodeid,
        "name": judged.name,
        "label": judged.label,
        "classification": judged.classification,
        "summary": judged.summary(),
        "threshold": judged.threshold,
        "confidence": judged.confidence,
        "note": judged.note,
        "changes": changes,
    }


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g} ms"


def compare_result(
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    confidence: float | None = None,
) -> ResultChange:
    """Compare one result dict (`Result.to_dict`) with its counterpart in the saved run.

    `threshold` is the session's; the result's own ``regression=`` keyword wins. `confidence`
    defaults to the result's own; its error is split evenly among the compared percentiles.
    """
    conf = float(confidence if confidence is not None else after.get("confidence") or 0.95)
    t = threshold_for(after, threshold)
    nodeid, name = str(after.get("nodeid", "")), str(after.get("name", ""))
    named = bool(after.get("named"))
    if before is None:
        return ResultChange(nodeid, name, named, t, conf, new=True)
    if not before.get("samples_ns"):
        note = (
            "the saved run holds no raw samples for this result (save it with "
            "--latency-save or --latency-json, which keep them)"
        )
        return ResultChange(nodeid, name, named, t, conf, note=note)
    quantiles = quantiles_for(after.get("spec"))
    alpha = (1 - conf) / len(quantiles)
    old, new = _sorted_samples(before), _sorted_samples(after)
    changes = tuple(
        compare_quantile(old, new, q, threshold=t, alpha=alpha, metric=m) for m, q in quantiles
    )
    return ResultChange(nodeid, name, named, t, conf, changes=changes)


@dataclass
class SavedRun:
    """A saved run's results, indexed by (nodeid, name) for matching."""

    results: Sequence[Mapping[str, Any]]
    environment: Mapping[str, Any] = field(default_factory=dict)
    _index: dict[tuple[str, str], list[Mapping[str, Any]]] = field(
        default_factory=dict, init=False, repr=False
    )

    def __post_init__(self) -> None:
        for r in self.results:
            if r.get("kind"):  # accuracy gates and same-run comparisons have no samples
                continue
            self._index.setdefault((r.get("nodeid", ""), r.get("name", "")), []).append(r)

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> SavedRun:
        return cls(list(report.get("results") or []), dict(report.get("environment") or {}))

    def counterpart(
        self, result: Mapping[str, Any], occurrence: int = 0
    ) -> Mapping[str, Any] | None:
        """The saved run's result of the same test and name (the `occurrence`-th of them)."""
        found = self._index.get((result.get("nodeid", ""), result.get("name", "")), [])
        return found[occurrence] if occurrence < len(found) else None

    def compare(
        self,
        results: Iterable[Mapping[str, Any]],
        *,
        threshold: float = DEFAULT_THRESHOLD,
        confidence: float | None = None,
    ) -> list[ResultChange]:
        """Compare every result; a test measured twice under one name pairs up in order."""
        seen: dict[tuple[str, str], int] = {}
        out = []
        for r in results:
            if r.get("kind"):
                continue
            key = (r.get("nodeid", ""), r.get("name", ""))
            before = self.counterpart(r, seen.get(key, 0))
            seen[key] = seen.get(key, 0) + 1
            out.append(compare_result(before, r, threshold=threshold, confidence=confidence))
        return out

    def missing(self, results: Iterable[Mapping[str, Any]]) -> list[str]:
        """Tests in the saved run that this run did not measure (deselected, renamed, gone)."""
        ran = {(r.get("nodeid", ""), r.get("name", "")) for r in results}
        return sorted(f"{k[0]} ({k[1]})" for k in self._index if k not in ran)


def env_differences(
    before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[tuple[str, Any, Any]]:
    """``(field, before, after)`` for each fingerprint field that makes latencies incomparable:
    CPU model, core count and affinity, governor, Python, and the versions of key packages."""
    out = [(k, before.get(k), after.get(k)) for k in ENV_FIELDS if before.get(k) != after.get(k)]
    old_pkgs, new_pkgs = before.get("packages") or {}, after.get("packages") or {}
    for name in sorted((set(old_pkgs) | set(new_pkgs)) - ENV_IGNORED_PACKAGES):
        if old_pkgs.get(name) != new_pkgs.get(name):
            out.append((f"packages.{name}", old_pkgs.get(name), new_pkgs.get(name)))
    return out


def describe_differences(diffs: Sequence[tuple[str, Any, Any]]) -> str:
    """``cpu_model 'A' -> 'B'; packages.numpy '1.26.4' -> '2.0.0'``."""
    return "; ".join(f"{k} {_show(a)} -> {_show(b)}" for k, a, b in diffs)


def _show(value: Any) -> str:
    return "(absent)" if value is None else repr(value)


def __getattr__(name: str) -> Any:
    if name == "Baseline":  # the old name, from before "baseline" meant only the service
        warnings.warn(
            "pytest_latency.core.regression.Baseline is deprecated; use SavedRun",
            DeprecationWarning,
            stacklevel=2,
        )
        return SavedRun
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
