"""Packaging facts a user relies on: one version, the declared licence, the public names."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest_latency

ROOT = Path(__file__).resolve().parents[2]


def test_the_version_has_one_source_the_package_itself() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    assert importlib.metadata.version("pytest-latency") == pytest_latency.__version__


def test_the_declared_licence_is_an_spdx_expression_with_its_file() -> None:
    meta = importlib.metadata.metadata("pytest-latency")
    assert meta["License-Expression"] == "MIT"
    assert "LICENSE" in (meta.get_all("License-File") or [])
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")


def test_everything_a_test_touches_is_importable_from_the_package() -> None:
    for name in (
        "LatencyFixture",
        "AccuracyGate",
        "Comparison",
        "AccuracySpec",
        "PytestLatencyWarning",
        "LatencyMissed",
        "SloFailure",
        "Spec",
        "Result",
        "LatencyReport",
    ):
        assert name in pytest_latency.__all__
        assert getattr(pytest_latency, name).__name__ == name
