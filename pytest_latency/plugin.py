"""pytest plugin: the ``slo`` marker, the ``latency`` fixture, options, header and reports.

Heavy work happens in hooks and fixtures, never at import: ``pytest --help`` stays fast.
"""

from __future__ import annotations

import os
import random
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from .core.spec import Spec, SpecError
from .settings import OPTIONS, Settings, resolve

SETTINGS_KEY = pytest.StashKey[Settings]()
SPEC_KEY = pytest.StashKey[Spec]()
RESULTS_KEY = pytest.StashKey[list[dict[str, Any]]]()
REPORT_ATTR = "latency_results"  # on TestReport.__dict__: survives xdist serialisation

SLO_MARKER = (
    "slo(p50_ms=None, p90_ms=None, p95_ms=None, p99_ms=None, p999_ms=None, max_ms=None, "
    "cold_start_ms=None, min_rps=None, max_error_rate=0, confidence=0.95, warmup='auto', "
    "min_samples=None, max_samples=None, max_time_s=None, concurrency=1, rate_rps=None, "
    "arrivals='poisson', gc='off'): a latency SLO that the `latency` fixture measures and "
    "enforces with stated confidence. Example: "
    "@pytest.mark.slo(p99_ms=10, p50_ms=4) def test_fast(latency): latency(fn)"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("latency", "latency SLOs (pytest-latency)")
    for dest, flag, help_text in OPTIONS:
        group.addoption(
            flag, dest=dest, default=None, metavar=dest.split("_")[-1].upper(), help=help_text
        )
        parser.addini(dest, help_text, default=None)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", SLO_MARKER)
    config.addinivalue_line(
        "markers", "gpu: needs a CUDA GPU (onnxruntime-gpu / TensorRT); skipped without one"
    )
    workerinput = getattr(config, "workerinput", None)
    # Workers inherit the controller's seed so a run is reproducible from its header.
    seed = int(workerinput["latency_seed"]) if workerinput else random.randrange(2**31)
    config.stash[SETTINGS_KEY] = resolve(config, seed)
    if workerinput is None:
        config.pluginmanager.register(LatencyReporter(config), "latency-reporter")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: hand the session seed to each worker."""
    node.workerinput["latency_seed"] = node.config.stash[SETTINGS_KEY].seed


def pytest_report_header(config: pytest.Config) -> str:
    return config.stash[SETTINGS_KEY].header()


def marker_spec(item: pytest.Item) -> Spec | None:
    """Merge every ``slo`` marker on the item (module, class, function; nearer wins)."""
    markers = list(item.iter_markers("slo"))
    if not markers:
        return None
    merged: dict[str, Any] = {}
    for mark in reversed(markers):
        if mark.args:
            raise SpecError(
                f"positional arguments {mark.args!r} are not accepted; use keywords, "
                "e.g. @pytest.mark.slo(p99_ms=10)"
            )
        merged.update(mark.kwargs)
    return Spec.from_kwargs(**merged)


def _validate(item: pytest.Item) -> None:
    try:
        spec = marker_spec(item)
    except SpecError as exc:
        raise pytest.fail.Exception(
            f"{item.nodeid}: invalid @pytest.mark.slo: {exc}", pytrace=False
        ) from None
    if spec is None:
        return
    fixtures = getattr(item, "fixturenames", ())
    if "latency" not in fixtures:
        raise pytest.fail.Exception(
            f"{item.nodeid}: marked @pytest.mark.slo but does not use the `latency` fixture; "
            "add it to the test's arguments and call latency(fn, ...)",
            pytrace=False,
        )
    item.stash[SPEC_KEY] = spec


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
def latency(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Measure a callable under the test's ``@pytest.mark.slo`` and fail on its verdict.

    ``result = latency(fn, *args, slo=None, name=None, **kwargs)``; see `LatencyFixture`.
    """
    from .fixture import LatencyFixture, user_properties

    item = request.node
    spec = item.stash.get(SPEC_KEY, None)
    if spec is None and item.get_closest_marker("slo") is not None:
        spec = marker_spec(item)  # a marker added after collection
    store = item.stash.setdefault(RESULTS_KEY, [])

    def record(result: Any) -> None:
        data = result.to_dict()
        data["xdist_worker"] = os.environ.get("PYTEST_XDIST_WORKER")
        store.append(data)
        item.user_properties.extend(user_properties(result))

    fixture = LatencyFixture(
        marker_spec=spec,
        settings=request.config.stash[SETTINGS_KEY],
        nodeid=item.nodeid,
        record=record,
        fail=lambda message: pytest.fail(message, pytrace=False),
    )
    yield fixture
    fixture.close()
    if spec is not None and not fixture.results:
        pytest.fail(
            f"{item.nodeid} is marked @pytest.mark.slo but never called latency(fn, ...): "
            "nothing was measured, so its SLO was not checked",
            pytrace=False,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    results = item.stash.get(RESULTS_KEY, None)
    if results and call.when == "call":
        report.__dict__[REPORT_ATTR] = list(results)
    return report


class LatencyReporter:
    """Controller-side: gathers results from reports (local or xdist) and renders them."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.results: list[dict[str, Any]] = []

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
            self.results.append({**data, "outcome": outcome})

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from .report.table import legend, summary_rows

        verbosity = self.config.getoption("verbose")
        if not self.results or verbosity <= -2:
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

        report = build_report(self.results, settings.as_dict(), cwd=self.config.rootpath)
        write_report(settings.json_path, report)
