"""``latency.http`` and ``latency.remote``: an open loop issued by Locust worker processes
(``engine='locust'``, ``workers=N``), judged like any other measurement. The workers are the
session's cluster (``--latency-locust-master``) or local ones, started per test and stopped
when the test ends (``LatencyFixture.close``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from ..core.cluster import INSTALL, LocustCluster, LocustError
from ..core.distributed import make_locust_driver
from ..core.remote import describe
from ..core.result import Result
from ..core.runner import measure
from ..core.spec import Spec


def locust_installed() -> bool:
    """Whether the ``locust`` extra is installed (found, not imported: it monkey-patches)."""
    return importlib.util.find_spec("locust") is not None


def distributed(
    fixture: Any,  # the LatencyFixture (not imported: it imports this module)
    target: dict[str, Any],
    name: str | None,
    slo: Spec | Mapping[str, Any] | None,
) -> Result:
    """Measure `target` (an ``http_target`` or ``callable_target`` dict) on Locust workers
    under the test's SLO (``engine='locust'`` implied), then record and enforce the verdict."""
    spec = fixture.spec_for(slo)
    if spec.engine != "locust":
        spec = spec.merged({"engine": "locust"})
    if not locust_installed():
        message = f"engine='locust' needs Locust, not installed here: {INSTALL}"
        if fixture._skip is None:
            raise RuntimeError(message)
        fixture._skip(message)
    label = name or describe(target)

    def remote_request() -> None:  # names the measurement; the workers issue requests
        raise RuntimeError("runs on Locust workers")

    remote_request.__qualname__ = describe(target)
    try:
        cluster = cluster_for(fixture, spec.workers or 1)
        measurement = measure(
            remote_request,
            spec=spec,
            progress=fixture._progress,
            driver_factory=make_locust_driver(target, cluster),
        )
    except LocustError as exc:
        fixture._fail(f"{fixture.nodeid}: {exc}")
        raise
    result = Result(
        label,
        spec,
        measurement.samples,
        measurement.verdict,
        fixture.nodeid,
        named=name is not None,
    )
    kept: Result = fixture._keep(result)
    return kept


def cluster_for(fixture: Any, workers: int) -> LocustCluster:
    """The session's cluster (``--latency-locust-master``), else the test's own local one of
    `workers` processes, started on first use and restarted if it died."""
    if fixture._locust_cluster is not None:
        shared: LocustCluster = fixture._locust_cluster(workers)
        return shared
    cluster: LocustCluster | None = fixture._clusters.get(workers)
    if cluster is None or not cluster.alive():
        cluster = LocustCluster(workers)
        fixture._clusters[workers] = cluster
        cluster.start()
    return cluster
