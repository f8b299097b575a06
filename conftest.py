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
