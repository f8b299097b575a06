"""The typed description of the ``--latency-json`` / ``--latency-save`` document, schema
``pytest-latency/1``: what `json_report.build_report` returns and what the readers (the CLI,
``--latency-compare``, the renderers) may rely on. Checked against a real run by
``tests/plugin/test_json_schema.py``; described in docs/reports.md.

Field names are kept as old reports wrote them, so saved runs keep loading: a same-run
comparison's ``baseline`` / ``baseline_q_ms`` are its *reference* side (README, "Words").
``NotRequired`` marks what only some documents or results hold.

    from pytest_latency.report.schema import LatencyReport
    report: LatencyReport = json.loads(Path("latency.json").read_text())
    report["results"][0]["percentiles_ms"]["p99"]
"""

# No ``from __future__ import annotations``: TypedDict reads ``NotRequired`` from evaluated
# annotations only (Python 3.11 counts a string-annotated key as required).
from typing import Literal, NotRequired, TypedDict

Decision = Literal["PASS", "FAIL", "INCONCLUSIVE"]
Classification = Literal["regression", "improvement", "no change", "inconclusive", "new"]
Outcome = Literal["passed", "failed", "skipped", "xfailed", "xpassed"]


class Settings(TypedDict):
    """The session's measurement defaults (`keys.Settings.as_dict`)."""

    confidence: float
    warmup: int | str
    max_time_s: float
    gc: str
    seed: int
    inconclusive: str


class Timer(TypedDict):
    name: str
    resolution_s: float
    monotonic: bool


class Git(TypedDict):
    commit: str
    dirty: bool


class Environment(TypedDict):
    """The fingerprint (`core.env.fingerprint`) compared under ``--latency-compare``."""

    cpu_model: str
    cpu_count: int | None
    cpu_affinity: int
    governor: str | None
    loadavg: list[float] | None
    platform: str
    python: str
    implementation: str
    timer: Timer
    packages: dict[str, str]  # distribution name -> version, installed ones only
    git: Git | None
    created: str  # UTC, ISO 8601


class Spec(TypedDict):
    """A result's resolved SLO (`core.spec.Spec`), every field present, ``None`` if unset."""

    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    max_ms: float | None
    cold_start_ms: float | None
    min_rps: float | None
    max_error_rate: float
    goodput: float | None
    goodput_ms: float | None
    confidence: float | None
    warmup: int | str | None
    min_samples: int | None
    max_samples: int | None
    max_time_s: float | None
    concurrency: int | None
    rate_rps: float | None
    arrivals: Literal["poisson", "constant"] | None
    gc: Literal["off", "on"] | None
    budget: dict[str, float] | None
    regression: float | None
    engine: Literal["inprocess", "locust"] | None
    workers: int | None
    seed: int | None


class Target(TypedDict):
    """One row of a verdict table: a target, its estimate, bounds and decision."""

    metric: str
    target: float | None
    observed: float | None
    lower: float | None
    upper: float | None
    n: int
    decision: Decision
    unit: str
    margin: float | None
    note: str


class LatencyTarget(Target):
    quantile: float | None
    exceedances: int | None
    samples_to_decide: int | None


class Warmup(TypedDict):
    mode: str  # "count" or "auto"
    calls: int
    steady: bool
    duration_ns: int
    errors: int
    hung: int


class Load(TypedDict):
    mode: str  # "serial", "closed", "open" or "external" (samples handed to judge())
    concurrency: int | None
    offered_rps: float | None
    arrivals: str | None
    issued: int
    late: int
    not_issued: int
    late_threshold_ns: int
    start_lag_p50_ns: int | None
    start_lag_p99_ns: int | None
    achieved_rps: float | None
    censored: int


class Change(TypedDict):
    """One percentile against the saved run (`core.regression.Change`)."""

    metric: str
    quantile: float
    before_ms: float | None
    after_ms: float | None
    ratio: float | None
    lower: float | None
    upper: float | None
    threshold: float
    alpha: float
    n_before: int
    n_after: int
    classification: Classification


class Regression(TypedDict):
    """A result against its counterpart in the saved run (`core.regression.ResultChange`)."""

    nodeid: str
    name: str
    label: str
    classification: Classification
    summary: str
    threshold: float
    confidence: float
    note: str
    changes: list[Change]


class Result(TypedDict):
    """One latency measurement (`core.result.Result.to_dict` plus what the plugin adds)."""

    nodeid: str
    name: str
    named: bool
    decision: Decision
    summary: str
    spec: Spec
    confidence: float
    alpha: float
    looks: int
    n: int
    errors: int
    censored: int
    wrong: NotRequired[int]  # answers `check=` rejected (a goodput target)
    hung: int
    first_error: str | None
    stopped_by: str
    cold_start_ms: float | None
    throughput_rps: float | None
    wall_s: float
    percentiles_ms: dict[str, float]  # p50, p90, p95, p99, p999, max, mean
    percentile_bounds_ms: dict[str, list[float | None]]  # p50, p99: [lower, upper]
    targets: list[LatencyTarget]
    problems: list[str]
    warmup: Warmup | None
    load: Load
    stages_ms: dict[str, dict[str, float]]  # stage -> n, p50, p99, mean
    samples_ns: NotRequired[list[int]]  # raw latencies, in completion order
    censored_ns: NotRequired[list[int]]  # open loop: unfinished requests' waits so far
    xdist_worker: NotRequired[str | None]
    regression: NotRequired[Regression]  # under --latency-compare
    outcome: NotRequired[Outcome]  # the test's, once its report is in


class AccuracySpec(TypedDict):
    max_drop: float | None
    min_agreement: float | None
    confidence: float | None


class Accuracy(TypedDict):
    """One accuracy gate (`plugin.gate.AccuracyResult.to_dict`)."""

    kind: Literal["accuracy"]
    nodeid: str
    name: str
    decision: Decision
    summary: str
    spec: AccuracySpec
    confidence: float
    alpha: float
    n: int
    targets: list[Target]
    xdist_worker: NotRequired[str | None]
    outcome: NotRequired[Outcome]


class Comparison(TypedDict):
    """One same-run comparison (`core.compare.Comparison.to_dict`, ``latency.speedup``)."""

    kind: Literal["comparison"]
    baseline: str  # the reference's name (the field keeps schema pytest-latency/1's name)
    candidate: str
    quantile: float
    min_speedup: float
    ratio: float | None
    lower: float | None
    upper: float | None
    decision: Decision
    summary: str
    confidence: float
    alpha: float
    looks: int
    block: int
    rounds: int
    settle_s: NotRequired[float]  # unmeasured pause before each block (0: none)
    block_warmup: NotRequired[int]  # untimed calls opening each block (0: none)
    baseline_q_ms: float | None  # the reference's quantile
    candidate_q_ms: float | None
    n: list[int]  # [reference, candidate]
    errors: list[int]  # [reference, candidate]
    max_error_rate: float
    problems: list[str]
    nodeid: NotRequired[str]
    xdist_worker: NotRequired[str | None]
    outcome: NotRequired[Outcome]


class LatencyReport(TypedDict):
    """The whole document."""

    schema: Literal["pytest-latency/1"]
    settings: Settings
    environment: Environment
    results: list[Result]
    accuracy: list[Accuracy]
    comparisons: list[Comparison]
