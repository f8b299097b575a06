"""The ``latency`` and ``accuracy_gate`` fixtures: each hands the test an object that
measures (or gates), records its results where the collector finds them, and fails the test
on its verdict. The objects themselves are in `fixture` and `gate`; this is their glue."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from ..core.cluster import LocustCluster
from .failures import PytestLatencyWarning
from .keys import (
    ACCURACY_KEY,
    CALL_PASSED_KEY,
    LOCUST_KEY,
    RESULTS_KEY,
    SETTINGS_KEY,
    SPEC_KEY,
)
from .markers import accuracy_spec, marker_spec
from .progress import live_progress
from .saved_run import check_regression

if TYPE_CHECKING:  # the fixtures' types import numpy: kept out of `pytest --help`
    from ..core.compare import Comparison
    from .fixture import LatencyFixture
    from .gate import AccuracyGate, AccuracyResult


@pytest.fixture
def latency(request: pytest.FixtureRequest) -> Iterator[LatencyFixture]:
    """Measure a callable under the test's ``@pytest.mark.slo`` and fail on its verdict.

    ``result = latency(fn, *args, slo=None, name=None, **kwargs)``; see `LatencyFixture`.
    """
    # The measuring object imports the runner (numpy): loaded when a test asks for it.
    from ..core.result import Result
    from . import failures
    from .fixture import LatencyFixture, user_properties

    item = request.node
    config = request.config
    spec = item.stash.get(SPEC_KEY, None)
    if spec is None and item.get_closest_marker("slo") is not None:
        spec = marker_spec(item)  # a marker added after collection
    store = item.stash.setdefault(RESULTS_KEY, [])

    def record(result: Result | Comparison) -> None:
        data = result.to_dict()
        data["xdist_worker"] = os.environ.get("PYTEST_XDIST_WORKER")
        if not isinstance(result, Result):  # a same-run comparison
            data["nodeid"] = item.nodeid
            prefix = f"latency.compare[{data['baseline']} vs {data['candidate']}]"
            item.user_properties.append((f"{prefix}.decision", data["decision"]))
            item.user_properties.append((f"{prefix}.speedup", f"{data['ratio'] or 0:.4g}"))
        else:
            item.user_properties.extend(user_properties(result))
        store.append(data)
        check_regression(config, item, data)

    settings = config.stash[SETTINGS_KEY]
    fixture = LatencyFixture(
        marker_spec=spec,
        settings=settings,
        nodeid=item.nodeid,
        record=record,
        fail=failures.fail,
        progress=live_progress(config, item.nodeid),
        skip=lambda message: pytest.skip(message),
        locust_cluster=_remote_cluster(config) if settings.locust_master else None,
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
    # The gate imports the accuracy statistics (numpy): loaded when a test asks for it.
    from .gate import AccuracyGate

    item = request.node
    spec = item.stash.get(ACCURACY_KEY, None)
    if spec is None and item.get_closest_marker("accuracy") is not None:
        spec = accuracy_spec(item)
    store = item.stash.setdefault(RESULTS_KEY, [])

    def record(result: AccuracyResult) -> None:
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


def _remote_cluster(config: pytest.Config) -> Callable[[int], LocustCluster]:
    """--latency-locust-master: one master for the session (workers started elsewhere stay
    connected from test to test), stopped when the session ends."""

    def get(workers: int) -> LocustCluster:
        cluster = config.stash.get(LOCUST_KEY, None)
        if cluster is None or not cluster.alive():
            settings = config.stash[SETTINGS_KEY]
            cluster = LocustCluster(
                workers, master=settings.locust_master, timeout_s=settings.locust_timeout_s
            )
            config.stash[LOCUST_KEY] = cluster
            config.add_cleanup(cluster.close)
            cluster.start()
        else:
            cluster.wait_for_workers(workers)
        return cluster

    return get


def _never_called(item: pytest.Item) -> bool:
    """The test body passed without calling the fixture (a skip, xfail or failure is not
    "never called": it already has its outcome)."""
    return item.stash.get(CALL_PASSED_KEY, False)
