"""pytest plugin: the ``slo`` marker, the ``latency`` fixture, options, header and reports.

Heavy work happens in hooks and fixtures, never at import: ``pytest --help`` stays fast.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from .baseline import add_options as add_baseline_options
from .baseline import check_regression
from .baseline import configure as configure_baseline
from .core.spec import AccuracySpec, Spec, SpecError
from .settings import OPTIONS, Settings, resolve

if TYPE_CHECKING:  # the fixtures' types import numpy: kept out of `pytest --help`
    from .fixture import LatencyFixture
    from .gate import AccuracyGate

SETTINGS_KEY = pytest.StashKey[Settings]()
SPEC_KEY = pytest.StashKey[Spec]()
ACCURACY_KEY = pytest.StashKey[AccuracySpec]()
RESULTS_KEY = pytest.StashKey[list[dict[str, Any]]]()
CALL_PASSED_KEY = pytest.StashKey[bool]()
REPORT_ATTR = "latency_results"  # on TestReport.__dict__: survives xdist serialisation

SLO_MARKER = (
    "slo(p50_ms=None, p90_ms=None, p95_ms=None, p99_ms=None, p999_ms=None, max_ms=None, "
    "cold_start_ms=None, min_rps=None, max_error_rate=0, confidence=0.95, warmup='auto', "
    "min_samples=None, max_samples=None, max_time_s=None, concurrency=1, rate_rps=None, "
    "arrivals='poisson', gc='off', budget=None, regression=None): a latency SLO that the "
    "`latency` fixture measures and enforces with stated confidence (regression: the slowdown "
    "allowed against --latency-compare's baseline, a share); a bare @pytest.mark.slo only "
    "tags a test for -m slo. Example: "
    "@pytest.mark.slo(p99_ms=10, p50_ms=4) def test_fast(latency): latency(fn)"
)


ACCURACY_MARKER = (
    "accuracy(max_drop=0.01, min_agreement=None, confidence=0.95): the `accuracy_gate` "
    "fixture checks that a candidate model loses at most max_drop accuracy (a share) against "
    "a reference on the same examples, with stated confidence. Example: "
    "@pytest.mark.accuracy(max_drop=0.01) def test_int8(accuracy_gate): "
    "accuracy_gate(int8, fp32, texts, labels)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("latency", "latency SLOs (pytest-latency)")
    for dest, flag, help_text in OPTIONS:
        group.addoption(
            flag, dest=dest, default=None, metavar=dest.split("_")[-1].upper(), help=help_text
        )
        parser.addini(dest, help_text, default=None)
    add_baseline_options(parser, group)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", SLO_MARKER)
    config.addinivalue_line("markers", ACCURACY_MARKER)
    config.addinivalue_line(
        "markers", "gpu: needs a CUDA GPU (onnxruntime-gpu / TensorRT); skipped without one"
    )
    workerinput = getattr(config, "workerinput", None)
    # Workers inherit the controller's seed so a run is reproducible from its header.
    seed = int(workerinput["latency_seed"]) if workerinput else random.randrange(2**31)
    config.stash[SETTINGS_KEY] = resolve(config, seed)
    configure_baseline(config)
    if workerinput is None:
        config.pluginmanager.register(LatencyReporter(config), "latency-reporter")
        if config.stash[SETTINGS_KEY].html_path:
            from .html_reporter import HtmlReporter

            config.pluginmanager.register(HtmlReporter(config), "latency-html")
    from . import benchmark_interop, progress

    progress.configure(config)
    benchmark_interop.configure(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: hand the session seed to each worker."""
    node.workerinput["latency_seed"] = node.config.stash[SETTINGS_KEY].seed


def pytest_report_header(config: pytest.Config) -> str:
    return config.stash[SETTINGS_KEY].header()


def _marker_kwargs(item: pytest.Item, name: str, example: str) -> dict[str, Any]:
    """Keywords of every `name` marker on the item, module first, nearest last (nearer wins)."""
    merged: dict[str, Any] = {}
    for mark in reversed(list(item.iter_markers(name))):
        if mark.args:
            raise SpecError(
                f"positional arguments {mark.args!r} are not accepted; use keywords, "
                f"e.g. @pytest.mark.{name}({example})"
            )
        merged.update(mark.kwargs)
    return merged


def marker_spec(item: pytest.Item) -> Spec | None:
    """Merge every ``slo`` marker on the item (module, class, function; nearer wins).

    A bare ``@pytest.mark.slo`` (no keywords anywhere) only tags the test for ``-m slo``.
    """
    merged = _marker_kwargs(item, "slo", "p99_ms=10")
    return Spec.from_kwargs(**merged) if merged else None


def accuracy_spec(item: pytest.Item) -> AccuracySpec | None:
    """Merge every ``accuracy`` marker on the item (nearer wins)."""
    if item.get_closest_marker("accuracy") is None:
        return None
    return AccuracySpec.from_kwargs(**_marker_kwargs(item, "accuracy", "max_drop=0.01"))


def _collection_error(item: pytest.Item, message: str) -> BaseException:
    return pytest.fail.Exception(f"{item.nodeid}: {message}", pytrace=False)


def _validate(item: pytest.Item) -> None:
    fixtures = getattr(item, "fixturenames", ())
    checks: tuple[tuple[str, Callable[[pytest.Item], Any], str, pytest.StashKey[Any]], ...] = (
        ("slo", marker_spec, "latency", SPEC_KEY),
        ("accuracy", accuracy_spec, "accuracy_gate", ACCURACY_KEY),
    )
    for marker, parse, fixture, key in checks:
        try:
            spec = parse(item)
            if marker == "slo" and spec is not None and fixture not in fixtures:
                from .benchmark_interop import BENCHMARK_FIXTURE, check_spec

                if BENCHMARK_FIXTURE in fixtures:  # decided on pytest-benchmark's timings
                    check_spec(spec)
                    fixture = BENCHMARK_FIXTURE
        except SpecError as exc:
            raise _collection_error(item, f"invalid @pytest.mark.{marker}: {exc}") from None
        if spec is None:
            continue
        if fixture not in fixtures:
            alternative = (
                " (or time it with pytest-benchmark's `benchmark` fixture)"
                if marker == "slo"
                else ""
            )
            raise _collection_error(
                item,
                f"marked @pytest.mark.{marker} but does not use the `{fixture}` fixture; "
                f"add it to the test's arguments and call it{alternative}",
            )
        item.stash[key] = spec


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: Any, name: str, obj: object) -> Generator[None, Any, Any]:
    """Validate ``slo`` markers while collecting: a bad keyword is a collection error that
    names the test, before anything is measured."""
    result = yield
    items = result if isinstance(result, list) else [result]
    for item in items:
        if isinstance(item, pytest.Function):
            _validate(item)
    return result


@pytest.fixture
def latency(request: pytest.FixtureRequest) -> Iterator[LatencyFixture]:
    """Measure a callable under the test's ``@pytest.mark.slo`` and fail on its verdict.

    ``result = latency(fn, *args, slo=None, name=None, **kwargs)``; see `LatencyFixture`.
    """
    from . import failures
    from .fixture import LatencyFixture, user_properties

    item = request.node
    spec = item.stash.get(SPEC_KEY, None)
    if spec is None and item.get_closest_marker("slo") is not None:
        spec = marker_spec(item)  # a marker added after collection
    store = item.stash.setdefault(RESULTS_KEY, [])

    def record(result: Any) -> None:
        data = result.to_dict()
        data["xdist_worker"] = os.environ.get("PYTEST_XDIST_WORKER")
        if data.get("kind") == "comparison":
            data["nodeid"] = item.nodeid
            prefix = f"latency.compare[{data['baseline']} vs {data['candidate']}]"
            item.user_properties.append((f"{prefix}.decision", data["decision"]))
            item.user_properties.append((f"{prefix}.speedup", f"{data['ratio'] or 0:.4g}"))
        else:
            item.user_properties.extend(user_properties(result))
        store.append(data)
        check_regression(
            request.config, item, data, request.config.stash[SETTINGS_KEY].inconclusive
        )

    from .progress import live_progress

    fixture = LatencyFixture(
        marker_spec=spec,
        settings=request.config.stash[SETTINGS_KEY],
        nodeid=item.nodeid,
        record=record,
        fail=failures.fail,
        progress=live_progress(request.config, item.nodeid),
    )
    yield fixture
    fixture.close()
    if spec is not None and not fixture.results and _never_called(item):
        pytest.fail(
            f"{item.nodeid} is marked @pytest.mark.slo but never called latency(fn, ...): "
            "nothing was measured, so its SLO was not checked",
            pytrace=False,
        )


@pytest.fixture
def accuracy_gate(request: pytest.FixtureRequest) -> Iterator[AccuracyGate]:
    """Check that a candidate model keeps the reference's accuracy on the same examples.

    ``accuracy_gate(candidate, reference, inputs, labels, spec=None, name="accuracy")`` where
    candidate and reference map a list of inputs to a list of labels; see `AccuracyGate`.
    """
    import warnings

    from .fixture import PytestLatencyWarning
    from .gate import AccuracyGate

    item = request.node
    spec = item.stash.get(ACCURACY_KEY, None)
    if spec is None and item.get_closest_marker("accuracy") is not None:
        spec = accuracy_spec(item)
    store = item.stash.setdefault(RESULTS_KEY, [])

    def record(result: Any) -> None:
        data = result.to_dict()
        store.append(data)
        item.user_properties.append((f"accuracy[{result.name}].decision", data["decision"]))
        item.user_properties.append((f"accuracy[{result.name}].drop", f"{result.drop:.6g}"))

    gate = AccuracyGate(
        marker_spec=spec,
        nodeid=item.nodeid,
        inconclusive=request.config.stash[SETTINGS_KEY].inconclusive,
        record=record,
        fail=lambda message: pytest.fail(message, pytrace=False),
        warn=lambda message: warnings.warn(PytestLatencyWarning(message), stacklevel=3),
    )
    yield gate
    if spec is not None and not gate.results and _never_called(item):
        pytest.fail(
            f"{item.nodeid} is marked @pytest.mark.accuracy but never called "
            "accuracy_gate(...): its accuracy was not checked",
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.when == "call":
        item.stash[CALL_PASSED_KEY] = report.passed and not hasattr(report, "wasxfail")
        results = item.stash.get(RESULTS_KEY, None)
        if results:
            report.__dict__[REPORT_ATTR] = list(results)
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Markers added after collection (say, by a conftest hook) are validated here."""
    if (item.get_closest_marker("slo") and SPEC_KEY not in item.stash) or (
        item.get_closest_marker("accuracy") and ACCURACY_KEY not in item.stash
    ):
        _validate(item)


def _never_called(item: pytest.Item) -> bool:
    """The test body passed without calling the fixture (a skip, xfail or failure is not
    "never called": it already has its outcome)."""
    return item.stash.get(CALL_PASSED_KEY, False)


class LatencyReporter:
    """Controller-side: gathers results from reports (local or xdist) and renders them."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: list[dict[str, Any]] = []
        self.accuracy: list[dict[str, Any]] = []
        self.comparisons: list[dict[str, Any]] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        results = report.__dict__.get(REPORT_ATTR)
        if not results or report.when != "call":
            return
        outcome = (
            "xfailed"
            if hasattr(report, "wasxfail") and report.skipped
            else ("xpassed" if hasattr(report, "wasxfail") else report.outcome)
        )
        for data in results:
            target = {"accuracy": self.accuracy, "comparison": self.comparisons}.get(
                data.get("kind", ""), self.results
            )
            target.append({**data, "outcome": outcome})

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from .report.table import accuracy_rows, legend, summary_rows

        verbosity = self.config.getoption("verbose")
        if verbosity <= -2:
            return
        if self.accuracy:
            shown = (
                self.accuracy
                if verbosity >= 0
                else [r for r in self.accuracy if r["decision"] != "PASS"]
            )
            if shown:
                terminalreporter.write_sep("=", f"accuracy: {len(self.accuracy)} gate(s)")
                for line in accuracy_rows(shown):
                    terminalreporter.write_line(line)
        shown_comparisons = [
            c for c in self.comparisons if verbosity >= 0 or c["decision"] != "PASS"
        ]
        if shown_comparisons:
            terminalreporter.write_sep("=", f"latency comparisons: {len(self.comparisons)}")
            for c in shown_comparisons:
                terminalreporter.write_line(f"{c['nodeid']}: {c['summary']}")
        if not self.results:
            return
        rows = (
            self.results if verbosity >= 0 else [r for r in self.results if r["decision"] != "PASS"]
        )
        tr = terminalreporter
        tr.write_sep("=", f"latency: {len(self.results)} measurement(s)")
        if rows:
            for line in summary_rows(rows, verbose=verbosity > 0):
                tr.write_line(line)
        else:
            tr.write_line("all latency SLOs passed")
        workers = {r.get("xdist_worker") for r in self.results} - {None}
        if workers:
            tr.write_line(
                f"warning: {len(self.results)} measurement(s) ran under pytest-xdist beside "
                "other tests, which share the CPUs and skew latencies. Keep SLO tests serial: "
                "`pytest -m slo -p no:xdist` (and `pytest -m 'not slo' -n auto` for the rest).",
                yellow=True,
            )
        if verbosity >= 0:
            confidences = {r["confidence"] for r in self.results}
            for line in legend(confidences.pop() if len(confidences) == 1 else None):
                tr.write_line(line)
        if self.config.stash[SETTINGS_KEY].json_path:
            tr.write_line(f"latency JSON written to {self.config.stash[SETTINGS_KEY].json_path}")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        settings = self.config.stash[SETTINGS_KEY]
        if not settings.json_path:
            return
        from .report.json_report import build_report, write_report

        report = build_report(
            self.results,
            settings.as_dict(),
            cwd=self.config.rootpath,
            accuracy=self.accuracy,
            comparisons=self.comparisons,
        )
        write_report(settings.json_path, report)
