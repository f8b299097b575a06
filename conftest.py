"""Repository-wide pytest options for the reference system's tests."""

from __future__ import annotations

import pytest

PROFILES = ("quick", "full")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reference", "reference system (reference_system/)")
    group.addoption(
        "--reference-profile",
        default="quick",
        choices=PROFILES,
        help="model build profile for tests/reference and tests/slo: quick (CI; ~4 min cold "
        "on 2 cores) or full (the main job; all training data). Default: quick",
    )
    external = parser.getgroup("latency-services", "external deployments for the service SLOs")
    external.addoption(
        "--service-url", default=None,
        help="run the service SLOs against this optimised front (http://host:port) instead of "
        "one the session starts",
    )
    external.addoption(
        "--colocated-url", default=None,
        help="the co-located front (the INT8 model in the front's process, http://host:port) "
        "instead of one the session starts",
    )
    external.addoption(
        "--baseline-url", default=None,
        help="the baseline front to compare with (http://host:port); default: started locally",
    )
    external.addoption(
        "--triton-url", default=None,
        help="Triton gRPC endpoint (host:port) serving the 'sentiment' model, instead of the "
        "embedded tritonserver",
    )
    external.addoption(
        "--redis-url", default=None,
        help="Redis for the prediction cache (redis://host:port/db), instead of the embedded "
        "redis-server",
    )
