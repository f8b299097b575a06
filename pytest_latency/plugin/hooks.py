"""The hub: every pytest hook of the plugin. It wires the feature modules together and
nothing imports it (arrows run hooks -> features -> keys).

Heavy work happens in hooks and fixtures, never at import: ``pytest --help`` stays fast.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from typing import Any

import pytest

from . import benchmark, markers, options, progress, saved_run
from .collector import Collector
from .fixtures import accuracy_gate, latency
from .keys import (
    CALL_PASSED_KEY,
    COLLECTOR_PLUGIN,
    GATHERED_KEY,
    REPORT_ATTR,
    RESULTS_KEY,
    SETTINGS_KEY,
    WRITERS_PLUGIN,
    Gathered,
)
from .writers import TerminalFooter, Writers

__all__ = [
    "accuracy_gate",
    "latency",
    "pytest_addoption",
    "pytest_configure",
    "pytest_configure_node",
    "pytest_pycollect_makeitem",
    "pytest_report_header",
    "pytest_runtest_makereport",
    "pytest_runtest_setup",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    markers.register(config)
    workerinput = getattr(config, "workerinput", None)
    # Workers inherit the controller's seed so a run is reproducible from its header.
    seed = int(workerinput["latency_seed"]) if workerinput else random.randrange(2**31)
    config.stash[SETTINGS_KEY] = options.resolve(config, seed)
    saved_run.configure(config)
    if workerinput is None:
        gathered = config.stash[GATHERED_KEY] = Gathered()
        config.pluginmanager.register(Collector(gathered), COLLECTOR_PLUGIN)
        config.pluginmanager.register(Writers(config), WRITERS_PLUGIN)
        config.pluginmanager.register(TerminalFooter(config), WRITERS_PLUGIN + "-footer")
    progress.configure(config)
    benchmark.configure(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller: hand the session seed to each worker."""
    node.workerinput["latency_seed"] = node.config.stash[SETTINGS_KEY].seed


def pytest_report_header(config: pytest.Config) -> list[str]:
    return options.header(config.stash[SETTINGS_KEY])


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: Any, name: str, obj: object) -> Generator[None, Any, Any]:
    """Validate ``slo`` markers while collecting: a bad keyword is a collection error that
    names the test, before anything is measured."""
    result = yield
    items = result if isinstance(result, list) else [result]
    for item in items:
        if isinstance(item, pytest.Function):
            markers.validate(item)
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Markers added after collection (say, by a conftest hook) are validated here."""
    if markers.needs_validation(item):
        markers.validate(item)


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
