"""The distribution: ``pip install pytest-latency`` installs the plugin and nothing else."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What a build reads; copied so that the build's own files (build/, *.egg-info) stay out of
# the checkout. reference_system is copied too: the wheel must leave it out on its own.
SOURCES = ("pyproject.toml", "PYPI.md", "LICENSE", "pytest_latency", "reference_system")


def test_the_wheel_holds_only_the_pytest_latency_package(tmp_path: Path) -> None:
    pytest.importorskip("setuptools", reason="the build backend: pip install setuptools")
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            caches = shutil.ignore_patterns("__pycache__", "node_modules")
            shutil.copytree(ROOT / name, source / name, ignore=caches)
        else:
            shutil.copy(ROOT / name, source / name)
    # No build isolation: the installed setuptools builds it offline in a few seconds.
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"),
            *("-w", str(tmp_path / "dist"), str(source)),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    (wheel,) = (tmp_path / "dist").glob("pytest_latency-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"pytest_latency"}
    assert "pytest_latency/py.typed" in names
    assert "pytest_latency/plugin/__init__.py" in names
