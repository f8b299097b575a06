"""Every stash key of the pytest layer, the records they hold, and the constants its modules
share. Imports nothing of the layer, so any module of it can import this one.

Per-run state lives in ``config.stash`` (and per-test state in ``item.stash``), never on the
config object or in globals; xdist workers hold their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from ..core.spec import AccuracySpec, Spec

if TYPE_CHECKING:  # numpy underneath: loaded only when a saved run is compared
    from ..core.regression import SavedRun
    from ..report.schema import LatencyReport

INCONCLUSIVE_POLICIES = ("fail", "warn", "pass")
PROGRESS_MODES = ("auto", "on", "off")

# On TestReport.__dict__: survives xdist serialisation and reaches the controller.
REPORT_ATTR = "latency_results"
# pytest-benchmark's fixture, whose timings an ``slo`` marker can be decided on.
BENCHMARK_FIXTURE = "benchmark"
# Set by GitHub Actions: the markdown summary is appended to it too.
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"

# Names the layer registers its plugin objects under (``-p no:NAME`` does not apply: they are
# registered by `hooks`, not found by entry point).
COLLECTOR_PLUGIN = "latency-collector"
WRITERS_PLUGIN = "latency-writers"
PROGRESS_PLUGIN = "latency-progress"
BENCHMARK_PLUGIN = "latency-benchmark-slo"


@dataclass(frozen=True)
class Settings:
    """Every option of the run, resolved once in ``pytest_configure`` (see `options`). No
    defaults here: each is in the option table (`options.OPTIONS`), once."""

    confidence: float
    warmup: int | str
    max_time_s: float
    gc: str
    seed: int
    inconclusive: str
    json_path: str | None
    html_path: str | None
    progress: str
    benchmark_json_path: str | None
    save_path: str | None
    compare_path: str | None
    threshold: float
    fail_on_regression: bool
    strict: bool
    markdown_path: str | None
    locust_master: tuple[str, int] | None  # engine='locust' with remote workers
    locust_timeout_s: float

    def spec_defaults(self) -> dict[str, Any]:
        """Defaults `Spec.resolved` uses for fields a marker leaves unset."""
        return {
            "confidence": self.confidence,
            "warmup": self.warmup,
            "max_time_s": self.max_time_s,
            "gc": self.gc,
        }

    def as_dict(self) -> dict[str, Any]:
        """The measurement settings a JSON report records."""
        return {**self.spec_defaults(), "seed": self.seed, "inconclusive": self.inconclusive}


@dataclass
class SavedRunState:
    """The saved run this run is compared with (``--latency-compare``), loaded once in every
    process, and how this run's environment differs from the one it was saved on."""

    path: str
    run: SavedRun
    environment: dict[str, Any]
    differences: list[tuple[str, Any, Any]] = field(default_factory=list)


@dataclass
class Gathered:
    """Controller-side: every result of the run (from local or xdist reports), the report
    built from them once, and what the writers wrote (for the terminal)."""

    results: list[dict[str, Any]] = field(default_factory=list)
    accuracy: list[dict[str, Any]] = field(default_factory=list)
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    report: LatencyReport | None = None
    written: dict[str, str] = field(default_factory=dict)


# config.stash
SETTINGS_KEY = pytest.StashKey[Settings]()
SAVED_RUN_KEY = pytest.StashKey[SavedRunState]()
GATHERED_KEY = pytest.StashKey[Gathered]()  # controller only
# --latency-locust-master: the session's Locust master (a core.cluster.LocustCluster).
LOCUST_KEY = pytest.StashKey[Any]()
# item.stash
SPEC_KEY = pytest.StashKey[Spec]()
ACCURACY_KEY = pytest.StashKey[AccuracySpec]()
RESULTS_KEY = pytest.StashKey[list[dict[str, Any]]]()
CALL_PASSED_KEY = pytest.StashKey[bool]()
SEEN_KEY = pytest.StashKey[list[tuple[Any, Any]]]()  # (nodeid, name) pairs compared so far
