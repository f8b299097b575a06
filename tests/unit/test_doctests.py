"""The docstring examples of the package, and of the reference system's modules that have any,
run, so they stay true (tests/unit, not ``--doctest-modules``: that would also import
examples/conftest.py beside tests/conftest.py, and every reference_system module with torch)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

import pytest_latency

# Modules that run only in Locust's processes: importing locust monkey-patches with gevent,
# which must never happen in the pytest process.
LOCUST_SIDE = "pytest_latency.locust_engine."


# The reference system's modules with examples: cheap to import (no torch, no model), named
# here rather than walked, so the walk never imports the heavy ones. Checked below.
REFERENCE_MODULES = [
    "reference_system.serving.contract",
    "reference_system.serving.prediction_cache",
    "reference_system.serving.redis_server",
]
ROOT = Path(__file__).resolve().parents[2]


def _modules() -> list[str]:
    prefix = pytest_latency.__name__ + "."
    names = [m.name for m in pkgutil.walk_packages(pytest_latency.__path__, prefix)]
    return [pytest_latency.__name__, *(n for n in names if not n.startswith(LOCUST_SIDE))]


def _import(name: str) -> ModuleType:
    """The module; a reference_system module whose stack is not installed (the tox envs of the
    plugin alone) is skipped, naming what is missing and how to get it."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if not name.startswith("reference_system."):
            raise
        pytest.skip(
            f"{name} needs {exc.name!r}, which is not installed here: the reference system's "
            "stack comes with ./dev (or pip install -r requirements/reference.txt)"
        )


@pytest.mark.parametrize("name", _modules() + REFERENCE_MODULES)
def test_the_docstring_examples_of_each_module_hold(name: str) -> None:
    module = _import(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"


def test_the_package_has_examples_that_run() -> None:
    """Guards the walk above: it finds modules, and their examples are tried."""
    tried = sum(doctest.testmod(importlib.import_module(n)).attempted for n in _modules())
    assert tried >= 5


def test_every_reference_system_module_with_examples_is_run() -> None:
    with_examples = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in (ROOT / "reference_system").rglob("*.py")
        if ">>>" in path.read_text()
    }
    assert with_examples == set(REFERENCE_MODULES)
    tried = sum(doctest.testmod(_import(n)).attempted for n in REFERENCE_MODULES)
    assert tried >= 5
